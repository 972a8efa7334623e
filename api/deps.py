"""Typed dependencies. The request owns the transaction: its session commits when the route
returns and rolls back when it raises; what waits for the commit (the outbox relay, Redis
flags) runs after it."""

from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from api.schemas import ErrorOut
from core.artifacts import ArtifactStore, open_store
from core.db import discard_after_commit, run_after_commit
from core.settings import Settings
from core.stream import MetricsStream


def get_session(request: Request) -> Iterator[Session]:
    """The request's unit of work: committed before the response is sent, rolled back if
    anything raised."""
    with request.app.state.sessions() as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            discard_after_commit(session)
            raise
        run_after_commit(session)


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
