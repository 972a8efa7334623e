"""Logs of the API and the workers: one JSON object a line (structlog's formatter over the
standard library's loggers, so uvicorn's, Celery's, Python's warnings and ours alike), each
with `job_id`, `run_id` and `attempt` (null where a line is about no run) and `worker`, the
process that wrote it (host:pid, as runs record their worker), or readable text
(OPTARENA_LOG_FORMAT=text, as scripts/dev sets)."""

import logging
import os
import socket
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from typing import Any

import structlog
from structlog.contextvars import (
    bind_contextvars,
    bound_contextvars,
    clear_contextvars,
    merge_contextvars,
)

from core.settings import Settings

FIELDS = ("job_id", "run_id", "attempt", "worker")
Event = MutableMapping[str, Any]


def _writer(_: Any, __: str, event: Event) -> Event:
    """The process that wrote the line (its pid read per line: pool processes fork), unless
    a task named its worker; uvicorn's colour-coded copy of the message dropped."""
    if event.get("worker") is None:
        event["worker"] = f"{socket.gethostname()}:{os.getpid()}"
    event.pop("color_message", None)
    return event


def _every_field(_: Any, __: str, event: Event) -> Event:
    """The same keys on every line, so a query for a run never misses a line for lack of one."""
    for name in FIELDS:
        event.setdefault(name, None)
    return event


def _known_fields(_: Any, __: str, event: Event) -> Event:
    """Text for people: only the fields that say something."""
    for name in FIELDS:
        if event.get(name) is None:
            event.pop(name, None)
    return event


def formatter(fmt: str = "json", service: str = "optarena") -> logging.Formatter:
    """The formatter every handler of a process uses (a dictConfig `()` factory)."""

    def add_service(_: Any, __: str, event: Event) -> Event:
        event.setdefault("service", service)
        return event

    shared: list[Any] = [
        merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        add_service,
        _writer,
    ]
    if fmt == "json":
        last: list[Any] = [
            _every_field,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(default=str),
        ]
    elif fmt == "text":
        last = [_known_fields, structlog.dev.ConsoleRenderer(colors=False)]
    else:
        raise ValueError(f"log format is json or text, not {fmt!r}")
    return structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *last],
    )


def config(settings: Settings, *, service: str) -> dict[str, Any]:
    """A logging.config.dictConfig for the process: the root logger to stderr through
    `formatter`, and uvicorn's and Celery's loggers passing their lines to it."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "structured": {
                "()": "core.logs.formatter",
                "fmt": settings.log_format,
                "service": service,
            }
        },
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "structured",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"handlers": ["stderr"], "level": settings.log_level},
        "loggers": {
            name: {"handlers": [], "propagate": True}
            for name in ("uvicorn", "uvicorn.error", "uvicorn.access", "celery")
        },
    }


def configure(settings: Settings, *, service: str) -> None:
    import logging.config

    logging.config.dictConfig(config(settings, service=service))
    logging.captureWarnings(True)  # warnings as log lines, not loose text on stderr


def bind(**fields: Any) -> None:
    """Add fields to every later line of this context (a task, a request)."""
    bind_contextvars(**fields)


@contextmanager
def task(**values: Any) -> Iterator[None]:
    """A task's fields from its start to its end, whatever it binds on the way."""
    clear_contextvars()
    bind_contextvars(**values)
    try:
        yield
    finally:
        clear_contextvars()


@contextmanager
def fields(**values: Any) -> Iterator[None]:
    """These fields on every line logged inside the block."""
    with bound_contextvars(**values):
        yield
