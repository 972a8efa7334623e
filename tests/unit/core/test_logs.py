"""Log lines as JSON with the job, run, attempt and worker on each, or as text for people."""

import io
import json
import logging
import os
import socket
from collections.abc import Iterator

import pytest

from core import logs

Lines = tuple[logging.Logger, io.StringIO, logging.Handler]


@pytest.fixture
def lines() -> Iterator[Lines]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    logger = logging.getLogger("test.logs")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    yield logger, out, handler
    logger.removeHandler(handler)


def test_a_json_line_has_the_task_fields_and_every_line_has_their_keys(lines: Lines) -> None:
    logger, out, handler = lines
    handler.setFormatter(logs.formatter("json", service="worker"))
    with logs.task(run_id="r-1", worker="host:7"):
        logs.bind(job_id="j-1", attempt=2)
        logger.warning("run %s resuming", "r-1")
    logger.info("outside", extra={"status": 200})
    inside, outside = (json.loads(line) for line in out.getvalue().splitlines())
    assert inside["event"] == "run r-1 resuming" and inside["level"] == "warning"
    assert (inside["job_id"], inside["run_id"], inside["attempt"], inside["worker"]) == (
        "j-1",
        "r-1",
        2,
        "host:7",
    )
    assert inside["service"] == "worker" and inside["logger"] == "test.logs"
    assert inside["timestamp"].endswith("Z")
    # the task's fields end with it; the keys stay
    assert {k: outside[k] for k in ("job_id", "run_id", "attempt")} == dict.fromkeys(
        ("job_id", "run_id", "attempt")
    )
    assert outside["worker"] == f"{socket.gethostname()}:{os.getpid()}"  # the writer
    assert outside["status"] == 200


def test_an_exception_is_one_json_line_with_its_traceback(lines: Lines) -> None:
    logger, out, handler = lines
    handler.setFormatter(logs.formatter("json"))
    try:
        raise ValueError("bad shape")
    except ValueError:
        logger.exception("run failed")
    [line] = out.getvalue().splitlines()
    found = json.loads(line)
    assert found["event"] == "run failed" and "ValueError: bad shape" in found["exception"]


def test_text_lines_name_only_the_fields_that_apply(lines: Lines) -> None:
    logger, out, handler = lines
    handler.setFormatter(logs.formatter("text"))
    with logs.fields(run_id="r-9"):
        logger.warning("heartbeat not written")
    text = out.getvalue()
    assert "heartbeat not written" in text and "run_id=r-9" in text
    assert "job_id" not in text and not text.startswith("{")


def test_an_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="json or text"):
        logs.formatter("xml")
