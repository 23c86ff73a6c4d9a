"""``python -m recsys_utils.bench``: the benchmark command (:mod:`recsys_utils.cli.bench`) as a module entry."""

from __future__ import annotations

from recsys_utils.cli.bench import main

__all__ = ["main"]

if __name__ == "__main__":
    raise SystemExit(main())
