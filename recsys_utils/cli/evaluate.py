"""Score a prediction file against a truth file from the command line.

    recsys-evaluate --pred PRED.csv --truth TRUTH.csv --k 10

The rules (also printed by ``--help``):

- PRED has the columns ``user_id,item_id,score`` and TRUTH ``user_id,item_id``; other columns are
  ignored. Both are comma-separated UTF-8 text with a header line.
- Ids are text, compared exactly (surrounding spaces removed): ``01`` and ``1``, ``1e3`` and ``1000``,
  ``True`` and ``TRUE`` are different ids, and ``NA`` or ``null`` are ids like any other. With
  ``--id-type int`` ids must be integers and compare as numbers (``01`` equals ``1``). An empty id
  is an error naming the row.
- Each user's predictions are ranked by score, highest first; tied scores are broken by item id
  (ascending, as text or as numbers with ``--id-type int``), so the order of rows in the file never
  changes a metric. A (user, item) pair predicted twice is an error.
- The metrics (:func:`recsys_utils.core.metrics.ranking_metrics`) average over the users in TRUTH:
  a truth user without predictions scores zero; users found only in PRED are left out and counted
  on stderr. If no TRUTH user has a prediction the command fails (the ids probably do not match).

One JSON object is printed to stdout::

    {"precision@10": ..., "recall@10": ..., "ndcg@10": ..., "map@10": ..., "hr@10": ...,
     "mrr@10": ..., "users": ...}

Bad input gives a one-line ``error: ...`` message on stderr naming the file, row or option, and
exit status 2.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys_utils.core.metrics import RANKING_METRICS, ranking_metrics
from recsys_utils.core.vocabulary import ITEM, SCORE, USER

EXIT_BAD_INPUT = 2
ID_TYPES = ("string", "int")


class InputError(ValueError):
    """A problem with the files or arguments given to the evaluator (reported, never a traceback)."""


# --------------------------------------------------------------------------------------------
# reading and checking the two files
# --------------------------------------------------------------------------------------------


def _read_table(path: str | Path, role: str, columns: Sequence[str]) -> pd.DataFrame:
    """Read a CSV and keep ``columns``; every failure becomes an :class:`InputError`."""
    where = f"{role} file '{path}'"
    path = Path(path)
    if not path.exists():
        raise InputError(f"{where}: no such file")
    if not path.is_file():
        raise InputError(f"{where}: not a regular file")
    try:
        with path.open("rb") as handle:
            head = handle.read(8192)
    except OSError as exc:
        raise InputError(f"{where}: cannot be read ({exc.strerror or exc})") from None
    if not head.strip():
        raise InputError(f"{where}: the file is empty")
    if b"\x00" in head:
        raise InputError(f"{where}: looks like a binary file (NUL bytes), expected CSV text")
    try:
        with warnings.catch_warnings():
            # a row with more fields than the header is an error, never silently shifted or cut
            warnings.simplefilter("error", pd.errors.ParserWarning)
            frame = pd.read_csv(path, index_col=False, encoding="utf-8", dtype=str, keep_default_na=False,
                                na_filter=False)
    except UnicodeDecodeError:
        raise InputError(f"{where}: not UTF-8 text, expected CSV") from None
    except pd.errors.EmptyDataError:
        raise InputError(f"{where}: the file is empty") from None
    except (pd.errors.ParserError, pd.errors.ParserWarning, ValueError, OSError) as exc:
        message = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{where}: cannot be parsed as CSV ({message.replace('C error: ', '')})") from None
    _hint_delimiter(frame, where, columns)
    return _check_frame(frame, where, columns)


def _hint_delimiter(frame: pd.DataFrame, where: str, columns: Sequence[str]) -> None:
    """A header that is one column holding another delimiter: say so instead of 'missing column'."""
    if len(frame.columns) != 1 or columns[0] in frame.columns:
        return
    header = str(frame.columns[0])
    for name, char in (("semicolons", ";"), ("tabs", "\t"), ("'|' characters", "|")):
        if char in header:
            raise InputError(f"{where}: the header {header!r} is separated by {name}; this tool reads "
                             f"comma-separated files (expected {','.join(columns)})")


def _check_frame(frame: pd.DataFrame, where: str, columns: Sequence[str]) -> pd.DataFrame:
    """Columns present, at least one row, no empty id; ids become stripped text (scores stay as given)."""
    missing = [name for name in columns if name not in frame.columns]
    if missing:
        raise InputError(f"{where}: missing column '{missing[0]}' (columns are {list(frame.columns)})")
    if frame.empty:
        raise InputError(f"{where}: has a header but no rows")
    out = {}
    for name in columns:
        column = frame[name]
        if name == SCORE:
            out[name] = column.reset_index(drop=True)
            continue
        text = column.astype(str).str.strip()
        blank = column.isna().to_numpy() | (text == "").to_numpy()
        if blank.any():
            raise InputError(f"{where}: empty {name} at {_row_name(int(blank.argmax()))}")
        out[name] = text.reset_index(drop=True)
    return pd.DataFrame(out)


def _typed_ids(ids: pd.Series, id_type: str, where: str, name: str) -> pd.Series:
    """Ids as text (default) or as exact integers with ``--id-type int`` (never through floats)."""
    if id_type == "string":
        return ids
    bad = ~ids.str.fullmatch(r"[+-]?\d+").to_numpy(bool)
    if bad.any():
        first = int(bad.argmax())
        raise InputError(f"{where}: {name} {ids.iloc[first]!r} at {_row_name(first)} is not an integer "
                         "(--id-type int)")
    return ids.map(int)


def _row_name(position: int) -> str:
    """How a 0-based data row is named in messages (the header is line 1 of the file)."""
    return f"row {position + 1} (line {position + 2})"


def _scores(frame: pd.DataFrame, where: str) -> np.ndarray:
    """The score column as float64; names the first non-numeric or missing value."""
    column = frame[SCORE]
    if pd.api.types.is_bool_dtype(column):
        raise InputError(f"{where}: non-numeric score {_show(column.iloc[0])} at {_row_name(0)}")
    if pd.api.types.is_numeric_dtype(column):
        values = column.to_numpy(dtype=np.float64)
    else:
        text = column.astype("string").str.strip()
        values = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        stated_nan = text.str.lower().isin(["nan", "-nan", "+nan"]).fillna(False).to_numpy(bool)
        bad = np.isnan(values) & (text.fillna("") != "").to_numpy(bool) & ~stated_nan
        if bad.any():
            first = int(bad.argmax())
            raise InputError(f"{where}: non-numeric score {_show(column.iloc[first])} at {_row_name(first)}")
    nan = np.isnan(values)
    if nan.any():
        raise InputError(f"{where}: missing or NaN score at {_row_name(int(nan.argmax()))}")
    return values


def _check_unique_pairs(users: np.ndarray, items: np.ndarray, pred: pd.DataFrame, where: str) -> None:
    """Raise naming one (user, item) pair that appears twice in the predictions."""
    n_items = int(items.max()) + 1 if items.size else 1
    keys = users.astype(np.int64) * n_items + items
    order = np.argsort(keys, kind="stable")
    repeated = keys[order][1:] == keys[order][:-1]
    if repeated.any():
        j = int(repeated.argmax())
        first, second = sorted((int(order[j]), int(order[j + 1])))
        user, item = _show(pred[USER].iloc[first]), _show(pred[ITEM].iloc[first])
        raise InputError(f"{where}: duplicate prediction for {USER}={user}, {ITEM}={item} "
                         f"({_row_name(first)} and {_row_name(second)})")


def _show(value: object) -> str:
    """An id or cell as it reads in the file (numpy scalars shown as plain Python values)."""
    return repr(value.item() if isinstance(value, np.generic) else value)


# --------------------------------------------------------------------------------------------
# building the matrices
# --------------------------------------------------------------------------------------------


def _top_matrix(user_rows: np.ndarray, items: np.ndarray, scores: np.ndarray, item_rank: np.ndarray,
                n_users: int, k: int) -> np.ndarray:
    """``(n_users, k)`` item codes ranked by score descending (ties: item id ascending), -1 padded."""
    order = _ranking_order(user_rows, scores, item_rank[items])
    users_sorted = user_rows[order]
    counts = np.bincount(users_sorted, minlength=n_users)
    group_start = (np.cumsum(counts) - counts)[users_sorted]
    position = np.arange(order.size) - group_start
    keep = position < k
    top = np.full((n_users, k), -1, dtype=np.int64)
    top[users_sorted[keep], position[keep]] = items[order[keep]]
    return top


def _ranking_order(user_rows: np.ndarray, scores: np.ndarray, tie_rank: np.ndarray) -> np.ndarray:
    """Row order by user, then score descending, then ``tie_rank`` ascending (the item id's rank).

    Same result as ``np.lexsort((tie_rank, -scores, user_rows))`` but faster: scores become dense
    ranks (tied scores share one), and a single integer key ``(user, rank, tie)`` is sorted.
    """
    n = scores.size
    if n == 0:
        return np.empty(0, dtype=np.int64)
    by_score = np.argsort(-scores)
    descending = -scores[by_score]
    dense = np.empty(n, dtype=np.int64)
    dense[by_score] = np.cumsum(np.r_[True, descending[1:] != descending[:-1]]) - 1
    n_levels, n_ties = int(dense.max()) + 1, int(tie_rank.max()) + 1
    if (int(user_rows.max()) + 1) * n_levels * n_ties >= 2**62:  # key would overflow int64
        return np.lexsort((tie_rank, -scores, user_rows))
    key = (user_rows.astype(np.int64) * n_levels + dense) * n_ties + tie_rank.astype(np.int64)
    return np.argsort(key, kind="stable")


def evaluate_files(pred_path: str | Path, truth_path: str | Path, k: int, *, id_type: str = "string",
                   log: TextIO | None = None) -> dict[str, float]:
    """Top-k metrics of a prediction CSV against a truth CSV, as one flat dict.

    Keys: ``precision@k, recall@k, ndcg@k, map@k, hr@k, mrr@k, users``; the rules are in the module
    docstring. Raises :class:`InputError` on bad input. When ``log`` is given, the number of users
    found only in PRED (left out of the evaluation) is written to it.
    """
    k, id_type = _check_k(k), _check_id_type(id_type)
    pred_where, truth_where = f"pred file '{pred_path}'", f"truth file '{truth_path}'"
    pred = _read_table(pred_path, "pred", (USER, ITEM, SCORE))
    truth = _read_table(truth_path, "truth", (USER, ITEM))
    return _evaluate(pred, truth, k, id_type, pred_where, truth_where, log)


def evaluate_frames(pred: pd.DataFrame, truth: pd.DataFrame, k: int, *, id_type: str = "string",
                    log: TextIO | None = None) -> dict[str, float]:
    """:func:`evaluate_files` for DataFrames already in memory (same columns, rules and keys; ids are
    compared as their text, so ``1`` and ``"1"`` match but ``1.0`` and ``1`` do not)."""
    k, id_type = _check_k(k), _check_id_type(id_type)
    pred = _check_frame(pred, "pred frame", (USER, ITEM, SCORE))
    truth = _check_frame(truth, "truth frame", (USER, ITEM))
    return _evaluate(pred, truth, k, id_type, "pred frame", "truth frame", log)


def _check_k(k: int) -> int:
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise InputError(f"--k must be an integer >= 1, got {k!r}")
    return int(k)


def _check_id_type(id_type: str) -> str:
    if id_type not in ID_TYPES:
        raise InputError(f"--id-type must be one of {', '.join(ID_TYPES)}, got {id_type!r}")
    return id_type


def _evaluate(pred: pd.DataFrame, truth: pd.DataFrame, k: int, id_type: str, pred_where: str,
              truth_where: str, log: TextIO | None) -> dict[str, float]:
    """Factorize the ids of both tables, rank the predictions and compute the metrics."""
    scores = _scores(pred, pred_where)
    truth_users, pred_users = (_typed_ids(f[USER], id_type, w, USER) for f, w in
                               ((truth, truth_where), (pred, pred_where)))
    truth_items, pred_items = (_typed_ids(f[ITEM], id_type, w, ITEM) for f, w in
                               ((truth, truth_where), (pred, pred_where)))
    truth_codes, user_ids = pd.factorize(truth_users)
    pred_rows = pd.Index(user_ids).get_indexer(pred_users)
    item_codes, item_ids = pd.factorize(pd.concat([truth_items, pred_items], ignore_index=True))
    truth_item_codes, pred_item_codes = item_codes[: len(truth)], item_codes[len(truth):]
    n_users, n_items = len(user_ids), max(1, len(item_ids))
    item_rank = np.empty(len(item_ids), dtype=np.int64)
    item_rank[np.argsort(np.asarray(item_ids, dtype=object), kind="stable")] = np.arange(len(item_ids))

    _check_unique_pairs(pd.factorize(pred_users)[0], pred_item_codes, pred, pred_where)
    known = pred_rows >= 0
    if not known.any():
        raise InputError(f"no user of {truth_where} has a prediction in {pred_where}: every metric would be "
                         "zero (do the user ids match? ids are compared as text unless --id-type int)")
    if log is not None:
        n_unknown = pd.unique(pred_users[~known]).size
        print(f"evaluate: {n_unknown} users in PRED but not in TRUTH ({truth_where}) were excluded",
              file=log)
    relevant = sp.csr_matrix((np.ones(len(truth)), (truth_codes, truth_item_codes)), shape=(n_users, n_items))
    # lists never hold more than n_items entries: rank that many and rescale precision, whose
    # denominator is k itself (every other metric is unchanged by empty slots past the list)
    k_used = min(k, n_items)
    top = _top_matrix(pred_rows[known], pred_item_codes[known], scores[known], item_rank, n_users, k_used)
    result = ranking_metrics(top, relevant, k_used, RANKING_METRICS).mean
    out = {name.replace(f"@{k_used}", f"@{k}"): value for name, value in result.items()}
    out[f"precision@{k}"] = result[f"precision@{k_used}"] * k_used / k
    return out


# --------------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------------


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage problem is one ``error:`` line and exit status 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        print(f"error: {message} (see --help)", file=sys.stderr)
        raise SystemExit(EXIT_BAD_INPUT)


def _parser() -> argparse.ArgumentParser:
    rules = __doc__.split("The rules (also printed by ``--help``):")[1].split("One JSON object")[0]
    parser = _Parser(
        prog="recsys-evaluate",
        description="Top-k metrics (precision, recall, NDCG, MAP, HR, MRR) of predictions against truth.",
        epilog="rules:" + rules.replace("``", ""),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--pred", required=True, help="CSV with user_id,item_id,score")
    parser.add_argument("--truth", required=True, help="CSV with user_id,item_id (held-out items)")
    parser.add_argument("--k", type=int, default=10, help="list length (default 10)")
    parser.add_argument("--id-type", choices=ID_TYPES, default="string",
                        help="compare ids as exact text (default) or as integers")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the evaluator; returns the exit status (0 ok, 2 bad input)."""
    args = _parser().parse_args(argv)
    try:
        metrics = evaluate_files(args.pred, args.truth, args.k, id_type=args.id_type, log=sys.stderr)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except MemoryError:
        print(f"error: out of memory evaluating '{args.pred}' against '{args.truth}'", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception as exc:  # last resort: the contract is one error line, never a traceback
        print(f"error: internal error evaluating '{args.pred}' against '{args.truth}': "
              f"{type(exc).__name__}: {exc} (please report)", file=sys.stderr)
        return 1
    print(json.dumps(metrics))
    return 0


if __name__ == "__main__":
    sys.exit(main())
