"""Versions: pyproject.toml declares ranges, requirements.lock pins the course's exact versions.

What matters, and nothing more (no version is hard-coded here, so upgrading a pin needs no test
change): the lock pins every line as ``name==version`` once; environment.yml repeats the lock;
every dependency and extra in pyproject.toml is a range that the locked version satisfies; and the
library's run-time dependencies hold no test, lint or notebook tool.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name
from packaging.version import InvalidVersion, Version

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements.lock"
PIN = re.compile(r"^(?P<name>[A-Za-z0-9][A-Za-z0-9._-]*)==(?P<version>[^\s=;#\[\]]+)$")

#: Tools for tests, lint and notebooks: never what the library needs at run time.
TOOLS = {"pytest", "nbval", "ruff", "hypothesis", "import-linter", "jupyterlab", "jupyter", "notebook",
         "ipykernel", "ipython", "nbclient", "nbconvert", "nbformat", "nbgrader", "pre-commit", "mypy", "coverage",
         "pytest-cov"}


def _lines(path: Path) -> list[str]:
    """Non-blank, non-comment lines, trailing comments removed."""
    lines = []
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split(" #")[0].strip()
        if line and not line.startswith("#"):
            lines.append(line)
    return lines


def _pins(lines: list[str], source: str) -> dict[str, Version]:
    pins: dict[str, Version] = {}
    for line in lines:
        match = PIN.match(line)
        assert match, f"{source}: '{line}' is not pinned as name==version"
        name = canonicalize_name(match["name"])
        assert name not in pins, f"{source}: {name} is listed twice"
        try:
            pins[name] = Version(match["version"])
        except InvalidVersion:
            pytest.fail(f"{source}: '{line}' has an invalid version")
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


def _requirements(strings: list[str], where: str) -> list[Requirement]:
    requirements = []
    for string in strings:
        try:
            requirements.append(Requirement(string))
        except InvalidRequirement as exc:
            pytest.fail(f"pyproject.toml {where}: {string!r} is not a valid requirement ({exc})")
    return requirements


@pytest.fixture(scope="module")
def lock() -> dict[str, Version]:
    return _pins(_lines(LOCK), LOCK.name)


@pytest.fixture(scope="module")
def project() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]


@pytest.fixture(scope="module")
def declared(project) -> dict[str, list[Requirement]]:
    """``[project] dependencies`` as ``"dependencies"`` and each extra under its own name."""
    groups = {"dependencies": _requirements(project.get("dependencies", []), "[project] dependencies")}
    for extra, strings in project.get("optional-dependencies", {}).items():
        groups[f"[{extra}]"] = _requirements(strings, f"extra [{extra}]")
    return groups


def test_lock_pins_every_line_once(lock):
    assert lock, f"{LOCK.name} lists no packages"


def test_environment_yml_repeats_the_lock(lock):
    items = _env_pip_lines(ROOT / "environment.yml")
    assert "-e ." in items, "environment.yml's pip section must install the package with '-e .'"
    env_pins = _pins([item for item in items if item != "-e ."], "environment.yml")
    missing = sorted(set(lock) - set(env_pins))
    extra = sorted(set(env_pins) - set(lock))
    assert not missing, f"environment.yml lacks {missing}"
    assert not extra, f"environment.yml has packages that {LOCK.name} does not: {extra}"
    differ = {name: (str(lock[name]), str(env_pins[name])) for name in lock if lock[name] != env_pins[name]}
    assert not differ, f"versions differ ({LOCK.name}, environment.yml): {differ}"


def test_environment_yml_python_is_one_the_package_supports(project):
    text = (ROOT / "environment.yml").read_text(encoding="utf-8")
    match = re.search(r"^\s*-\s*python=(\d+\.\d+)\s*$", text, re.M)
    assert match, "environment.yml must ask for one python=X.Y"
    assert Version(match[1]) in Requirement(f"python{project['requires-python']}").specifier
    assert "conda-forge" in text


def test_dependencies_are_declared_in_pyproject_not_read_from_a_file(project):
    assert "dependencies" in project, "pyproject.toml must list [project] dependencies itself"
    assert "dependencies" not in project.get("dynamic", []), "dependencies must not be dynamic"
    assert "optional-dependencies" not in project.get("dynamic", []), "extras must not be dynamic"
    assert project["dependencies"], "[project] dependencies is empty"


@pytest.mark.parametrize("group", ["course", "dev", "bench"])
def test_extra_exists(project, group):
    assert project.get("optional-dependencies", {}).get(group), f"pyproject.toml has no [{group}] extra"


def test_every_declared_requirement_is_a_range(declared):
    exact = [f"{where}: {req}" for where, reqs in declared.items() for req in reqs
             if any(spec.operator in ("==", "===") for spec in req.specifier)]
    assert not exact, f"pyproject.toml must declare ranges, not exact pins (those go in {LOCK.name}): {exact}"
    unbounded = [f"{where}: {req}" for where, reqs in declared.items() for req in reqs if not req.specifier]
    assert not unbounded, f"give these a version range: {unbounded}"


def test_locked_versions_satisfy_the_declared_ranges(declared, lock):
    unlocked = sorted({f"{where}: {req.name}" for where, reqs in declared.items() for req in reqs
                       if canonicalize_name(req.name) not in lock})
    assert not unlocked, f"declared in pyproject.toml but not pinned in {LOCK.name}: {unlocked}"
    outside = [f"{where}: {req} (locked {lock[canonicalize_name(req.name)]})"
               for where, reqs in declared.items() for req in reqs
               if not req.specifier.contains(lock[canonicalize_name(req.name)], prereleases=True)]
    assert not outside, f"{LOCK.name} pins versions outside pyproject.toml's ranges: {outside}"


def test_everything_locked_is_declared_somewhere(declared, lock):
    names = {canonicalize_name(req.name) for reqs in declared.values() for req in reqs}
    stray = sorted(set(lock) - names)
    assert not stray, (f"{LOCK.name} pins packages that pyproject.toml does not declare "
                       f"(add them to dependencies or an extra): {stray}")


def test_no_tool_is_a_run_time_dependency(declared):
    tools = sorted(canonicalize_name(req.name) for req in declared["dependencies"]
                   if canonicalize_name(req.name) in TOOLS)
    assert not tools, f"test/lint/notebook tools belong in an extra, not [project] dependencies: {tools}"


def test_console_scripts_point_into_the_package(project):
    scripts = project.get("scripts", {})
    assert scripts.get("recsys-evaluate") == "recsys_utils.cli.evaluate:main"
    assert scripts.get("recsys-bench") == "recsys_utils.cli.bench:main"
