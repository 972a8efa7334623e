"""The optarena API over HTTP: JSON calls that raise the server's own message, and an event
stream that resumes after a dropped connection."""

import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

_Self = TypeVar("_Self", bound="Api")


class ApiError(Exception):
    """The server answered with an error; `message` is what it said."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Unreachable(Exception):
    """No answer from the server at all."""


@dataclass(frozen=True)
class Event:
    event: str
    data: dict[str, Any]
    id: str | None


def server_message(response: httpx.Response) -> str:
    """The readable part of an error answer: `message` (422), `detail` (others), or the text."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip() or f"HTTP {response.status_code}"
    if isinstance(body, dict):
        for key in ("message", "detail"):
            if isinstance(body.get(key), str):
                return str(body[key])
        if body.get("detail") is not None:
            return json.dumps(body["detail"])
    return json.dumps(body)


class Api:
    """One server and one key; every call raises ApiError or Unreachable, never a traceback
    of httpx's."""

    def __init__(
        self,
        url: str,
        *,
        api_key: str | None = None,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = httpx.Client(
            base_url=self.url, timeout=httpx.Timeout(timeout), transport=transport, headers=headers
        )

    def close(self) -> None:
        self.http.close()

    def __enter__(self: _Self) -> _Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.TransportError as error:
            raise Unreachable(f"cannot reach the optarena API at {self.url}: {error}") from error
        if response.status_code >= 400:
            raise ApiError(response.status_code, server_message(response))
        return response

    def json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self.request(method, path, **kwargs).json()

    def events(
        self,
        job_id: str,
        *,
        after: str | None = None,
        retry_seconds: float = 1.0,
        max_retries: int = 30,
    ) -> Iterator[Event]:
        """The job's events until `done`, reconnecting with Last-Event-ID when the connection
        drops, so no record is missed or repeated."""
        last_id = after
        failures = 0
        while True:
            headers = {"accept": "text/event-stream"}
            if last_id is not None:
                headers["last-event-id"] = last_id
            try:
                with self.http.stream(
                    "GET",
                    f"/jobs/{job_id}/events",
                    headers=headers,
                    timeout=httpx.Timeout(30.0, read=60.0),
                ) as response:
                    if response.status_code >= 400:
                        response.read()
                        raise ApiError(response.status_code, server_message(response))
                    for event in parse_events(response.iter_lines()):
                        failures = 0
                        if event.id is not None:
                            last_id = event.id
                        yield event
                        if event.event == "done":
                            return
            except httpx.TransportError as error:
                failures += 1
                if failures > max_retries:
                    raise Unreachable(
                        f"lost the event stream of job {job_id} at {self.url}: {error}"
                    ) from error
            time.sleep(retry_seconds)


def parse_events(lines: Iterator[str]) -> Iterator[Event]:
    """Server-Sent Events from lines: fields until a blank line; comments (pings) skipped."""
    event, event_id = "message", None
    data: list[str] = []
    for line in lines:
        if not line:
            if data:
                yield Event(event=event, data=json.loads("\n".join(data)), id=event_id)
            event, data, event_id = "message", [], None
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if field == "event":
            event = value
        elif field == "data":
            data.append(value)
        elif field == "id":
            event_id = value
