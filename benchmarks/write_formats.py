"""Write a MovieLens ratings file in the NCF paper's format and in SASRec's sequence format.

    python benchmarks/write_formats.py --ratings ../shared/data/ml-100k/u.data --name ml-100k --out /tmp/formats

writes (never commit them: the MovieLens terms forbid redistribution)

* ``OUT/ncf/NAME.train.rating``, ``NAME.test.rating``, ``NAME.test.negative`` -- the files of He et al.
  (2017): 0-based ids, each user's latest rating held out (ties: file order), 99 items the user never
  rated drawn uniformly (``--seed``) for the test line;
* ``OUT/seq/NAME.txt`` -- one ``user item`` line per rating, users and items numbered from 1 in
  order of first appearance, each user's lines in time order (the format of SASRec's repository).

The bench command reads them with ``--dataset ncf --data-dir OUT/ncf --name NAME`` and
``--dataset sequences --data-dir OUT/seq/NAME.txt``. ``u.data`` (tab-separated) and ``ratings.dat``
(``::``-separated) are both understood.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd


def read_ratings(path: Path) -> pd.DataFrame:
    """user, item, rating, time columns of a MovieLens ratings file."""
    separator = "::" if path.name.endswith(".dat") else "\t"
    return pd.read_csv(path, sep=separator, names=["user", "item", "rating", "time"], engine="python")


def write_ncf(ratings: pd.DataFrame, folder: Path, name: str, seed: int = 0, n_negatives: int = 99) -> None:
    """The NCF files (see the module docstring)."""
    frame = ratings.sort_values(["user", "time"], kind="stable").reset_index(drop=True)
    frame["user"] = pd.factorize(frame["user"], sort=True)[0]
    frame["item"] = pd.factorize(frame["item"], sort=True)[0]
    last = frame.groupby("user").tail(1)
    folder.mkdir(parents=True, exist_ok=True)
    frame.drop(last.index).to_csv(folder / f"{name}.train.rating", sep="\t", header=False, index=False)
    last.to_csv(folder / f"{name}.test.rating", sep="\t", header=False, index=False)
    rng = np.random.default_rng(seed)
    n_items = int(frame["item"].max()) + 1
    seen = frame.groupby("user")["item"].apply(set)
    lines = []
    for user, item in zip(last["user"], last["item"], strict=True):
        allowed = np.setdiff1d(np.arange(n_items), np.fromiter(seen[user], dtype=np.int64))
        negatives = rng.choice(allowed, size=min(n_negatives, len(allowed)), replace=False)
        lines.append(f"({user},{item})\t" + "\t".join(str(j) for j in negatives))
    (folder / f"{name}.test.negative").write_text("\n".join(lines) + "\n")


def write_sequences(ratings: pd.DataFrame, path: Path) -> None:
    """SASRec's ``user item`` file (see the module docstring)."""
    frame = ratings.sort_values(["user", "time"], kind="stable")
    users = pd.factorize(frame["user"])[0] + 1
    items = pd.factorize(frame["item"])[0] + 1
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(f"{u} {i}" for u, i in zip(users, items, strict=True)) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ratings", required=True, help="u.data or ratings.dat")
    parser.add_argument("--name", required=True, help="file prefix, e.g. ml-100k")
    parser.add_argument("--out", required=True, help="output folder (outside the repository)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the NCF negatives")
    args = parser.parse_args()
    ratings = read_ratings(Path(args.ratings))
    out = Path(args.out)
    write_ncf(ratings, out / "ncf", args.name, args.seed)
    write_sequences(ratings, out / "seq" / f"{args.name}.txt")
    print(f"written {out / 'ncf'}/{args.name}.* and {out / 'seq' / args.name}.txt")


if __name__ == "__main__":
    main()
