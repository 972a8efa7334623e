"""Typed dependencies. The request owns the transaction: its session commits when the route
returns and rolls back when it raises; what waits for the commit (the outbox relay, Redis
flags) runs after it."""

from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

import anyio
from fastapi import Depends, Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from api.schemas import ErrorOut
from core.artifacts import ArtifactStore, open_store
from core.db import AFTER_COMMIT, discard_after_commit, run_after_commit
from core.settings import Settings
from core.stream import MetricsStream


async def get_session(request: Request) -> AsyncIterator[Session]:
    """The request's unit of work: committed before the response is sent, rolled back if
    anything raised.

    Made on the event loop (a new session holds no connection yet); its commit or rollback,
    and what waits for the commit, run in a thread of the pool, and only for a request that
    used it. A synchronous dependency took two turns of the pool for every request, one to
    make the session and one to end it: each a thread woken and the GIL handed over and
    back."""
    session: Session = request.app.state.sessions()
    try:
        yield session
    except BaseException:
        await _end(session, _roll_back)
        raise
    await _end(session, _commit)


async def _end(session: Session, how: Callable[[Session], None]) -> None:
    """Shielded: a client that goes away (its request cancelled) still has its session
    rolled back and its connection given back to the pool."""
    if not _used(session):
        session.close()
        return
    with anyio.CancelScope(shield=True):
        await run_in_threadpool(how, session)


def _used(session: Session) -> bool:
    """Whether ending the session has anything to do: a transaction (a connection, perhaps),
    objects to flush or steps waiting for a commit. An unused one is dropped as it is,
    holding nothing."""
    return bool(
        session.in_transaction()
        or session.new
        or session.dirty
        or session.deleted
        or AFTER_COMMIT in session.info
    )


def _commit(session: Session) -> None:
    with session:
        try:
            session.commit()
        except BaseException:
            session.rollback()
            discard_after_commit(session)
            raise
    run_after_commit(session)


def _roll_back(session: Session) -> None:
    with session:
        session.rollback()
        discard_after_commit(session)


# async: a dependency that only reads the app's state runs on the event loop, not in a
# thread of the pool (a hop there and back for every request)
async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_store(request: Request) -> ArtifactStore:
    """The artifact store the settings name: uploads, checkpoints, trained models."""
    return open_store(request.app.state.settings)


async def get_stream(request: Request) -> MetricsStream:
    stream: MetricsStream = request.app.state.stream
    return stream


# scope="function": the commit happens before the response goes out, so a client never sees
# an answer whose transaction then failed.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
SettingsDep = Annotated[Settings, Depends(get_settings)]
StreamDep = Annotated[MetricsStream, Depends(get_stream)]
StoreDep = Annotated[ArtifactStore, Depends(get_store)]

# The errors every authenticated endpoint can answer, for the OpenAPI document.
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "No API key, or not a valid one."},
    404: {"model": ErrorOut, "description": "No such job (another owner's jobs included)."},
    413: {"model": ErrorOut, "description": "The request body is over the size limit."},
    422: {"model": ErrorOut, "description": "The request is invalid; the reason per field."},
    429: {"model": ErrorOut, "description": "Over the rate limit or the active-runs limit."},
}
