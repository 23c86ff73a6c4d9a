"""requirements.txt is the one place that pins versions; everything else must agree with it."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]+\])?==(?P<version>[^\s=;#]+)$")


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_lines(path: Path) -> list[str]:
    lines = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split(" #")[0].strip()
        if line and not line.startswith("#"):
            lines.append(line)
    return lines


def _pins(lines: list[str], source: str) -> dict[str, str]:
    pins: dict[str, str] = {}
    for line in lines:
        match = PIN.match(line)
        assert match, f"{source}: '{line}' is not pinned as name==version"
        name = _normalise(match["name"])
        assert name not in pins, f"{source}: {name} is listed twice"
        pins[name] = match["version"]
    return pins


def _env_pip_lines(path: Path) -> list[str]:
    """The items of the ``- pip:`` list in environment.yml (a tiny parser: no YAML dependency)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip() == "- pip:"), None)
    assert start is not None, "environment.yml has no '- pip:' section"
    indent = len(lines[start]) - len(lines[start].lstrip())
    items = []
    for line in lines[start + 1:]:
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if len(line) - len(line.lstrip()) <= indent:
            break
        assert line.strip().startswith("- "), f"environment.yml: unexpected line in the pip section: {line!r}"
        items.append(line.strip()[2:].strip())
    return items


@pytest.fixture(scope="module")
def requirements() -> dict[str, str]:
    return _pins(_requirement_lines(ROOT / "requirements.txt"), "requirements.txt")


@pytest.fixture(scope="module")
def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def test_every_requirement_is_pinned(requirements):
    assert requirements, "requirements.txt lists no packages"


def test_torch_is_pinned_to_the_course_version(requirements):
    assert requirements.get("torch") == "2.13.0"


def test_environment_yml_repeats_requirements(requirements):
    items = _env_pip_lines(ROOT / "environment.yml")
    assert "-e ." in items, "environment.yml's pip section must install the package with '-e .'"
    env_pins = _pins([item for item in items if item != "-e ."], "environment.yml")
    missing = sorted(set(requirements) - set(env_pins))
    extra = sorted(set(env_pins) - set(requirements))
    assert not missing, f"environment.yml lacks {missing}"
    assert not extra, f"environment.yml has packages that requirements.txt does not: {extra}"
    differ = {name: (requirements[name], env_pins[name]) for name in requirements
              if requirements[name] != env_pins[name]}
    assert not differ, f"versions differ (requirements.txt, environment.yml): {differ}"


def test_environment_yml_uses_the_course_python():
    text = (ROOT / "environment.yml").read_text(encoding="utf-8")
    assert re.search(r"^\s*-\s*python=3\.11\s*$", text, re.M), "environment.yml must ask for python=3.11"
    assert "conda-forge" in text


def test_pyproject_reads_dependencies_from_requirements(pyproject):
    project = pyproject["project"]
    assert "dependencies" not in project, "pyproject.toml must not list dependencies itself"
    assert "dependencies" in project.get("dynamic", [])
    dynamic = pyproject["tool"]["setuptools"]["dynamic"]
    assert dynamic["dependencies"]["file"] == ["requirements.txt"]
    assert project["requires-python"] == ">=3.11"


def test_bench_extra_is_pinned_and_separate(pyproject, requirements):
    dynamic = pyproject["tool"]["setuptools"]["dynamic"]
    assert dynamic["optional-dependencies"]["bench"]["file"] == ["requirements-bench.txt"]
    bench = _pins(_requirement_lines(ROOT / "requirements-bench.txt"), "requirements-bench.txt")
    assert bench, "requirements-bench.txt lists no packages"
    both = sorted(set(bench) & set(requirements))
    assert not both, f"pin these only in requirements.txt, not also in requirements-bench.txt: {both}"
