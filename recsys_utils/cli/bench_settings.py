"""The bench command's tuned settings: TOML data files, one table of constructor arguments per model.

The tuned defaults live in data, not in code: ``benchmarks/settings/ncf.toml`` (the recipes for
``--dataset ncf``: mf, als, ease and neumf; see its comments for where each value comes from) and
``benchmarks/settings/sequential.toml`` (the next-item models under the leave-one-out protocols,
tuned on the validation item). ``--settings FILE`` replaces them. A file looks like::

    [sasrec]
    about = "why these values"   # optional, ignored
    dim = 64
    loss = "ce"

Where the repository's ``benchmarks/settings`` folder is not present (an installed wheel), the
command falls back to the models' code defaults and says so.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

#: the repository's settings folder (absent in an installed wheel)
SETTINGS_DIR = Path(__file__).resolve().parents[2] / "benchmarks" / "settings"


def load_settings(path: str | Path) -> dict[str, dict]:
    """``{model: {argument: value}}`` from a TOML file; a clear error names the file and the fault."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValueError(f"--settings {path}: file not found") from None
    except tomllib.TOMLDecodeError as error:
        raise ValueError(f"--settings {path}: not valid TOML ({error})") from None
    settings: dict[str, dict] = {}
    for model, table in data.items():
        if not isinstance(table, dict):
            raise ValueError(f"--settings {path}: '{model}' must be a table [{model}] of arguments")
        settings[model] = {key: value for key, value in table.items() if key != "about"}
    return settings


def default_settings(kind: str) -> tuple[dict[str, dict], str]:
    """The repository's settings for ``kind`` ("ncf" or "sequential") and where they came from."""
    path = SETTINGS_DIR / f"{kind}.toml"
    if not path.is_file():
        return {}, f"no {path}: the models' code defaults"
    return load_settings(path), str(path)
