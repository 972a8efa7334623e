"""The client is a distribution of its own: light dependencies, the Pythons it names, and
nothing of the server imported."""

import subprocess
import sys
import tomllib
from pathlib import Path

from tests.conftest import ROOT

CLIENT = ROOT / "client"


def project() -> dict[str, object]:
    found: dict[str, object] = tomllib.loads((CLIENT / "pyproject.toml").read_text())["project"]
    return found


def names(requirements: object) -> set[str]:
    assert isinstance(requirements, list)
    return {r.split(">")[0].split("<")[0].split("=")[0].split("[")[0] for r in requirements}


def test_the_client_depends_on_httpx_typer_and_rich_and_pandas_only_as_an_extra() -> None:
    meta = project()
    assert names(meta["dependencies"]) == {"httpx", "typer", "rich"}
    extras = meta["optional-dependencies"]
    assert isinstance(extras, dict) and names(extras["pandas"]) == {"pandas", "tqdm"}


def test_its_code_runs_on_the_oldest_python_it_names() -> None:
    meta = project()
    assert meta["requires-python"] == ">=3.10"
    assert "Programming Language :: Python :: 3.10" in meta["classifiers"]  # type: ignore[operator]
    vermin = Path(sys.executable).parent / "vermin"
    checked = subprocess.run(
        [str(vermin), "--target=3.10-", "--violations", "--no-tips", str(CLIENT / "src")],
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_importing_the_client_loads_nothing_of_the_server() -> None:
    check = (
        "import sys, optarena_client, optarena_client.cli, optarena_client.export; "
        "print(sorted(m for m in ('core', 'api', 'worker', 'sqlalchemy', 'celery', 'keras', "
        "'tensorflow', 'pandas') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
