"""Typed dependencies: the request's session, settings, stream and queue."""

from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from api.queue import RunQueue
from api.schemas import ErrorOut
from core.settings import Settings
from core.stream import MetricsStream


def get_session(request: Request) -> Iterator[Session]:
    """A session for the request; whatever it did not commit is rolled back."""
    with request.app.state.sessions() as session:
        yield session


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_stream(request: Request) -> MetricsStream:
    stream: MetricsStream = request.app.state.stream
    return stream


def get_queue(request: Request) -> RunQueue:
    queue: RunQueue = request.app.state.queue
    return queue


SessionDep = Annotated[Session, Depends(get_session)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
StreamDep = Annotated[MetricsStream, Depends(get_stream)]
QueueDep = Annotated[RunQueue, Depends(get_queue)]

# The errors every authenticated endpoint can answer, for the OpenAPI document.
ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "No API key, or not a valid one."},
    404: {"model": ErrorOut, "description": "No such job (another owner's jobs included)."},
    413: {"model": ErrorOut, "description": "The request body is over the size limit."},
    422: {"model": ErrorOut, "description": "The request is invalid; the reason per field."},
    429: {"model": ErrorOut, "description": "Over the rate limit or the active-runs limit."},
}
