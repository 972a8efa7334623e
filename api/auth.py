"""Who is asking: an API key from `Authorization: Bearer`, or the dashboard's cookie; and how
often they may ask (a moving one-minute window per key, kept in Redis)."""

import logging
import time
from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session, sessionmaker
from starlette.concurrency import run_in_threadpool

from api.ratelimit import Window
from api.schemas import Session as SessionOut
from core.db import transaction
from core.keys import KeyRepository, Principal, hash_key
from core.settings import Settings

log = logging.getLogger(__name__)

COOKIE = "optarena_key"
bearer = HTTPBearer(
    auto_error=False,
    description="An API key: `optarena keys create --owner NAME` prints one.",
)


class RateLimit:
    """At most `per_minute` requests per key in any 60 seconds (a moving window: no burst of
    twice the limit across a window's edge). While Redis is down the limit is not applied:
    it protects the service, and an outage is no reason to refuse work. Asked on the event
    loop, on a Redis connection of its own (api/ratelimit.py)."""

    def __init__(self, settings: Settings, window: Window | None) -> None:
        self.per_minute = settings.rate_limit_per_minute
        self.window = window if self.per_minute > 0 else None

    async def check(self, principal: Principal) -> None:
        if self.window is None:
            return
        try:
            retry = await self.window.hit(f"optarena:rate:{principal.key_id}")
        except Exception as error:
            log.warning("rate limit not applied, Redis did not answer: %r", error)
            return
        if retry:
            raise HTTPException(
                status.HTTP_429_TOO_MANY_REQUESTS,
                f"rate limit: at most {self.per_minute} requests a minute per API key; "
                f"retry in {retry} s",
                headers={"Retry-After": str(retry)},
            )


class KeyCache:
    """Keys this process has looked up, trusted for `seconds` (a revocation is honoured
    within that window). Only live keys are kept, so a new key works at once and a wrong one
    is looked up every time."""

    LIMIT = 10_000

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.seconds = seconds
        self.clock = clock
        self._keys: dict[str, tuple[float, Principal]] = {}

    def get(self, secret: str) -> Principal | None:
        if self.seconds <= 0:
            return None
        found = self._keys.get(hash_key(secret))
        if found is None or found[0] <= self.clock():
            return None
        return found[1]

    def put(self, secret: str, principal: Principal) -> None:
        if self.seconds <= 0:
            return
        if len(self._keys) >= self.LIMIT:
            self._keys = {}
        self._keys[hash_key(secret)] = (self.clock() + self.seconds, principal)


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, message, headers={"WWW-Authenticate": "Bearer"}
    )


def _look_up(sessions: sessionmaker[Session], secret: str) -> Principal | None:
    with transaction(sessions) as session:
        key = KeyRepository(session).authenticate(secret)
        return None if key is None else Principal(key.id, key.owner, key.admin)


async def require_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    """The key's owner and role; 401 without a live key, 429 over the rate limit. On the
    event loop: a key in the cache costs no turn of the thread pool, one looked up in
    Postgres costs one, in a short transaction of its own (so a route that needs no session
    of its own, or ends its own in its turn, as `POST /jobs` does, is given none)."""
    if credentials is not None:
        if credentials.scheme.lower() != "bearer":
            raise _unauthorized("send the API key as 'Authorization: Bearer <key>'")
        secret = credentials.credentials
    else:
        secret = request.cookies.get(COOKIE, "")
        if not secret:
            raise _unauthorized(
                "an API key is required: 'Authorization: Bearer <key>' "
                "(make one with 'optarena keys create --owner NAME')"
            )
    cache: KeyCache = request.app.state.keys
    principal = cache.get(secret)
    if principal is None:
        principal = await run_in_threadpool(_look_up, request.app.state.sessions, secret)
        if principal is None:
            raise _unauthorized("this API key is not valid (unknown or revoked)")
        cache.put(secret, principal)
    await request.app.state.rate_limit.check(principal)
    return principal


PrincipalDep = Annotated[Principal, Depends(require_principal)]


async def optional_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal | None:
    """The caller's principal when a key is given (401 for a bad one), else None."""
    if credentials is None and not request.cookies.get(COOKIE):
        return None
    return await require_principal(request, credentials)


MaybePrincipalDep = Annotated[Principal | None, Depends(optional_principal)]

router = APIRouter(prefix="/session", tags=["auth"])


@router.post("", response_model=SessionOut)
def open_session(principal: PrincipalDep, request: Request, response: Response) -> SessionOut:
    """For the dashboard: the key sent as Bearer is kept in an HttpOnly, SameSite=Strict cookie,
    so event streams and images (which cannot send headers) are authenticated too."""
    authorization = request.headers.get("authorization", "")
    secret = authorization.partition(" ")[2].strip()
    if not secret:
        raise _unauthorized("open a session with 'Authorization: Bearer <key>'")
    response.set_cookie(
        COOKIE, secret, httponly=True, samesite="strict", secure=request.url.scheme == "https"
    )
    return SessionOut(owner=principal.owner, admin=principal.admin)


@router.get("", response_model=SessionOut)
def whoami(principal: PrincipalDep) -> SessionOut:
    """The owner and role of the key (or the dashboard's cookie)."""
    return SessionOut(owner=principal.owner, admin=principal.admin)


@router.delete("", status_code=status.HTTP_204_NO_CONTENT)
def close_session(response: Response) -> None:
    """Forget the dashboard's cookie."""
    response.delete_cookie(COOKIE)
