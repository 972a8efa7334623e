"""The hash-locked requirements (scripts/lock): every install uses one, every line is pinned
and hashed, each holds what its pyproject extras ask for, at the versions the tests run with."""

import re
import tomllib
from pathlib import Path

from tests.conftest import ROOT

LOCKS = ROOT / "requirements"
# which pyproject extras each lock was made from (scripts/lock)
MADE_FROM = {
    "base": [],
    "monitoring": ["monitoring"],
    "worker-cpu": ["worker", "cpu"],
    "worker-gpu": ["worker", "gpu"],
    "dev": ["worker", "cpu", "dev", "monitoring"],
}
REQUIREMENT = re.compile(r"^([A-Za-z0-9_.\[\]-]+)==([^ ;\\]+)")


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name.split("[")[0]).lower()


def locked_versions(path: Path) -> dict[str, str]:
    """name -> version of every requirement in a lock file."""
    found = {}
    for line in path.read_text().splitlines():
        matched = REQUIREMENT.match(line)
        if matched:
            found[canonical(matched.group(1))] = matched.group(2)
    return found


def requirements(path: Path) -> list[tuple[str, list[str]]]:
    """Each requirement's line and its hashes."""
    entries: list[tuple[str, list[str]]] = []
    for line in path.read_text().splitlines():
        if REQUIREMENT.match(line):
            entries.append((line, []))
        elif line.strip().startswith("--hash=sha256:"):
            entries[-1][1].append(line.strip())
    return entries


def test_every_lock_line_is_pinned_and_hashed() -> None:
    assert sorted(p.stem for p in LOCKS.glob("*.txt")) == sorted(MADE_FROM)
    for path in LOCKS.glob("*.txt"):
        entries = requirements(path)
        assert len(entries) > 20, path
        for line, hashes in entries:
            assert hashes, (path.name, line)
        for line in path.read_text().splitlines():
            assert not line.startswith(("-e", "file:", ".")), (path.name, line)


def test_each_lock_holds_its_extras_at_their_pins() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    client = tomllib.loads((ROOT / "client" / "pyproject.toml").read_text())["project"]
    for lock, extras in MADE_FROM.items():
        wanted = list(project["dependencies"])
        for extra in extras:
            wanted += project["optional-dependencies"][extra]
        if lock == "dev":
            wanted += client["dependencies"] + client["optional-dependencies"]["pandas"]
        locked = locked_versions(LOCKS / f"{lock}.txt")
        for requirement in wanted:
            name = canonical(re.split(r"[=<>~!]", requirement)[0])
            assert name in locked, (lock, requirement)
            if "==" in requirement:
                assert locked[name] == requirement.split("==")[1], (lock, requirement)


def test_the_locks_agree_with_the_tested_versions() -> None:
    tested = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        if "==" in line:
            name, version = line.split("==")
            tested[canonical(name)] = version.strip()
    for path in LOCKS.glob("*.txt"):
        for name, version in locked_versions(path).items():
            if name in tested:
                assert version == tested[name], (path.name, name, version, tested[name])
    dev = locked_versions(LOCKS / "dev.txt")
    # pip freeze leaves out the installers themselves
    assert set(dev) - {"setuptools", "wheel"} == set(tested), sorted(set(dev) ^ set(tested))


def test_installs_and_images_install_from_the_locks_with_hashes() -> None:
    install = (ROOT / "scripts" / "install").read_text()
    assert "--require-hashes -r requirements/dev.txt" in install
    assert "--no-deps -e ./client -e ." in install
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert dockerfile.count("pip install --require-hashes -r") == 2
    for default in re.findall(r"ARG (?:API|WORKER)_LOCK=(\S+)", dockerfile):
        assert (LOCKS / f"{default}.txt").exists(), default
