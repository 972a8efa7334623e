"""Typed dependencies: the request's session, settings, stream and queue."""

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from api.queue import RunQueue
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
