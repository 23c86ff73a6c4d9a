"""Where the project lives: the root folder that holds ``pyproject.toml`` and the package."""

from __future__ import annotations

import os
from pathlib import Path

ROOT_ENV = "RECSYS_ROOT"


def project_root() -> Path:
    """The project root: ``$RECSYS_ROOT``, else the first folder at or above the working
    directory holding both ``pyproject.toml`` and ``recsys_utils/``, else the folder above
    this package."""
    env = os.environ.get(ROOT_ENV)
    if env:
        return Path(env).expanduser().resolve()
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / "pyproject.toml").is_file() and (folder / "recsys_utils").is_dir():
            return folder
    return Path(__file__).resolve().parents[2]
