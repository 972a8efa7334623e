"""Who is asking: an API key from `Authorization: Bearer`, or the dashboard's cookie; and how
often they may ask (a fixed one-minute window per key in Redis)."""

import logging
import time
import uuid
from dataclasses import dataclass
from typing import Annotated

import redis
from fastapi import APIRouter, Depends, HTTPException, Request, Response, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.schemas import Session as SessionOut
from core.keys import KeyRepository
from core.settings import Settings
from core.stream import MetricsStream

log = logging.getLogger(__name__)

COOKIE = "optarena_key"
bearer = HTTPBearer(
    auto_error=False,
    description="An API key: `optarena keys create --owner NAME` prints one.",
)


@dataclass(frozen=True)
class Principal:
    key_id: uuid.UUID
    owner: str
    admin: bool

    def sees(self, owner: str) -> bool:
        """Whether jobs of `owner` are visible to this key."""
        return self.admin or owner == self.owner


def _unauthorized(message: str) -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, message, headers={"WWW-Authenticate": "Bearer"}
    )


def _principal_of(request: Request, secret: str) -> Principal | None:
    with request.app.state.sessions() as session:
        key = KeyRepository(session).authenticate(secret)
        return None if key is None else Principal(key.id, key.owner, key.admin)


def _rate_limit(request: Request, principal: Principal) -> None:
    settings: Settings = request.app.state.settings
    limit = settings.rate_limit_per_minute
    if limit == 0:
        return
    stream: MetricsStream = request.app.state.stream
    window = int(time.time() // 60)
    counter = f"ratelimit:{principal.key_id}:{window}"
    try:
        pipe = stream.client.pipeline(transaction=False)
        pipe.incr(counter)
        pipe.expire(counter, 120)
        count = int(pipe.execute()[0])
    except redis.RedisError as error:  # The limit protects the service; Redis down is no reason
        log.warning("rate limit not applied, Redis unreachable: %s", error)  # to refuse work.
        return
    if count > limit:
        retry = 60 - int(time.time()) % 60
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            f"rate limit: at most {limit} requests a minute per API key; retry in {retry} s",
            headers={"Retry-After": str(retry)},
        )


def require_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal:
    """The key's owner and role; 401 without a live key, 429 over the rate limit."""
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
    principal = _principal_of(request, secret)
    if principal is None:
        raise _unauthorized("this API key is not valid (unknown or revoked)")
    _rate_limit(request, principal)
    return principal


PrincipalDep = Annotated[Principal, Depends(require_principal)]

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
