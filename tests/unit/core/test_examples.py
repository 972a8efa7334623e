"""Every example job in examples/ is a valid job, and every kind's API examples are too."""

import json
from pathlib import Path

import pytest

from core.kinds import KINDS, parse_job

EXAMPLE_DIR = Path(__file__).resolve().parents[3] / "examples"
API_EXAMPLES = {
    name: example["value"] for kind in KINDS.values() for name, example in kind.examples.items()
}


@pytest.mark.parametrize("path", sorted(EXAMPLE_DIR.glob("*.json")), ids=lambda p: p.name)
def test_example_files_are_valid_jobs(path: Path) -> None:
    assert parse_job(json.loads(path.read_text())).expand()


@pytest.mark.parametrize("name", sorted(API_EXAMPLES))
def test_api_examples_are_valid_jobs(name: str) -> None:
    assert parse_job(API_EXAMPLES[name]).expand()


def test_the_homework_examples_exist() -> None:
    names = {p.name for p in EXAMPLE_DIR.glob("*.json")}
    assert {"sgd-adam-rmsprop.json", "adam-batch-size-and-epochs.json"} <= names
