"""TensorFlow loads in the worker's child process only, and never in the API."""

import subprocess
import sys

import pytest

CHECK = (
    "import sys, {module}; "
    "print(sorted(m for m in ('keras', 'tensorflow', 'jax', 'torch') if m in sys.modules))"
)


@pytest.mark.parametrize(
    "module",
    [
        "api.app",
        "worker.tasks",
        "worker.celery_app",
        "core.kinds",
        "optarena_client.cli",
        "cli.keys",
    ],
)
def test_module_imports_no_ml_library(module: str) -> None:
    out = subprocess.run(
        [sys.executable, "-c", CHECK.format(module=module)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "[]"


def test_the_api_starts_without_scipy_or_matplotlib() -> None:
    """They load on the first comparison or plot: the API process starts in under a second."""
    check = (
        "import sys, api.app; print(sorted(m for m in ('scipy', 'matplotlib') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
