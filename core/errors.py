"""Errors the services raise, each meaning one HTTP answer; the API maps them in one place.
The message says what is wrong in words a client can act on."""


class ServiceError(Exception):
    """Base of the errors a client can act on; `status` is the HTTP status that says it."""

    status = 400

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}


class NotFound(ServiceError):
    """No such thing, or not one this caller may see (which must look the same)."""

    status = 404


class Conflict(ServiceError):
    """The request does not fit the current state of what it is about."""

    status = 409


class Invalid(ServiceError):
    """Well formed, but against a rule the schema cannot state (the reason says which)."""

    status = 422


class LimitExceeded(ServiceError):
    """Over a quota; try again later."""

    status = 429


class Rejected(Invalid):
    """Fields of a request body over the service's configured limits: a 422 in the shape of a
    validation error, each problem at its field."""

    def __init__(self, problems: list[tuple[tuple[str | int, ...], str]]) -> None:
        super().__init__("; ".join(f"{'.'.join(map(str, loc))}: {why}" for loc, why in problems))
        self.problems = problems


class TooLarge(ServiceError):
    """A body or file over the configured size limit."""

    status = 413
