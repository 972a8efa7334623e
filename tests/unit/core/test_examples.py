"""Every example job in examples/ is a valid job, and the API's examples are too."""

import json
from pathlib import Path

import pytest

from api.routes.jobs import EXAMPLES
from core.expand import expand_job
from core.spec import parse_job

EXAMPLE_DIR = Path(__file__).resolve().parents[3] / "examples"


@pytest.mark.parametrize("path", sorted(EXAMPLE_DIR.glob("*.json")), ids=lambda p: p.name)
def test_example_files_are_valid_jobs(path: Path) -> None:
    spec = parse_job(json.loads(path.read_text()))
    assert expand_job(spec)


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_api_examples_are_valid_jobs(name: str) -> None:
    assert expand_job(parse_job(EXAMPLES[name]["value"]))


def test_the_homework_examples_exist() -> None:
    names = {p.name for p in EXAMPLE_DIR.glob("*.json")}
    assert {"sgd-adam-rmsprop.json", "adam-batch-size-and-epochs.json"} <= names
