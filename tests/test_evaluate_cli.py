"""The evaluate CLI: JSON output on good files, one ``error:`` line and exit 2 on bad input."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from recsys_utils.cli.evaluate import InputError, _ranking_order, evaluate_files, evaluate_frames

ROOT = Path(__file__).resolve().parents[1]
KEYS = ["precision@{k}", "recall@{k}", "ndcg@{k}", "map@{k}", "hr@{k}", "mrr@{k}", "users"]

PRED = """user_id,item_id,score,model
1,a,0.9,m
1,b,0.8,m
1,c,0.7,m
1,d,0.6,m
1,e,0.5,m
1,f,0.4,m
2,a,0.1,m
2,b,0.2,m
3,x,1.0,m
"""
TRUTH = """user_id,item_id
1,b
1,e
1,g
2,c
4,a
"""


def run_cli(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "recsys_utils.cli.evaluate", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


def write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return path


def test_json_for_k5(tmp_path: Path) -> None:
    pred, truth = write(tmp_path, "pred.csv", PRED), write(tmp_path, "truth.csv", TRUTH)
    done = run_cli("--pred", str(pred), "--truth", str(truth), "--k", "5")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert list(out) == [key.format(k=5) for key in KEYS]
    # truth users 1, 2 and 4; user 3 appears only in PRED and is excluded.
    # user 1: top 5 = a b c d e, relevant {b, e, g}: hits at ranks 2 and 5.
    # user 2: ranked b, a; relevant {c}: no hit. user 4: no predictions: no hit.
    ndcg_1 = (1 / math.log2(3) + 1 / math.log2(6)) / (1 + 1 / math.log2(3) + 1 / math.log2(4))
    expected = {
        "precision@5": (2 / 5) / 3,
        "recall@5": (2 / 3) / 3,
        "ndcg@5": ndcg_1 / 3,
        "map@5": ((1 / 2 + 2 / 5) / 3) / 3,  # (P@2 + P@5) / min(3, 5) for user 1
        "hr@5": 1 / 3,
        "mrr@5": (1 / 2) / 3,
        "users": 3,
    }
    for key, value in expected.items():
        assert out[key] == pytest.approx(value, abs=1e-12), key
    assert "1 users in PRED but not in TRUTH" in done.stderr


def test_tied_scores_are_broken_by_item_id_not_file_order(tmp_path: Path) -> None:
    truth = write(tmp_path, "truth.csv", "user_id,item_id\n1,b\n")
    first_a = evaluate_files(write(tmp_path, "p1.csv", "user_id,item_id,score\n1,a,0.5\n1,b,0.5\n"), truth, 1)
    first_b = evaluate_files(write(tmp_path, "p2.csv", "user_id,item_id,score\n1,b,0.5\n1,a,0.5\n"), truth, 1)
    assert first_a == first_b
    assert first_a["precision@1"] == 0.0  # 'a' < 'b': a is ranked first
    flipped = write(tmp_path, "t2.csv", "user_id,item_id\n1,a\n")
    assert evaluate_files(write(tmp_path, "p3.csv", "user_id,item_id,score\n1,b,0.5\n1,a,0.5\n"),
                          flipped, 1)["precision@1"] == 1.0


def test_ranking_order_equals_lexsort_with_item_tie_break() -> None:
    rng = np.random.default_rng(0)
    users = rng.integers(0, 50, 2000)
    scores = np.round(rng.standard_normal(2000), 1)  # many ties, negative zeros included
    scores[:5] = [-0.0, 0.0, np.inf, -np.inf, 0.0]
    ties = rng.permutation(2000)
    np.testing.assert_array_equal(_ranking_order(users, scores, ties), np.lexsort((ties, -scores, users)))


def test_frames_and_text_ids() -> None:
    pred = pd.DataFrame({"user_id": ["u1", "u1", "u2"], "item_id": [10, 11, 10], "score": [1, 2, 3]})
    truth = pd.DataFrame({"user_id": ["u1", "u2"], "item_id": [10, 11]})
    out = evaluate_frames(pred, truth, 1)
    # u1 ranks 11 first (no hit at k = 1); u2 ranks 10 (not relevant)
    assert out["hr@1"] == 0.0 and out["users"] == 2
    assert evaluate_frames(pred, truth, 2)["recall@2"] == pytest.approx(0.5)
    with pytest.raises(InputError, match="missing column 'score'"):
        evaluate_frames(pred.drop(columns="score"), truth, 1)


def test_repeated_truth_rows_count_once() -> None:
    pred = pd.DataFrame({"user_id": [1, 1], "item_id": [5, 6], "score": [0.9, 0.1]})
    truth = pd.DataFrame({"user_id": [1, 1, 1], "item_id": [5, 5, 7]})
    # relevant set {5, 7}: one hit at rank 1 -> recall@2 = 1/2, not 2/3
    assert evaluate_frames(pred, truth, 2)["recall@2"] == pytest.approx(0.5)


GOOD_PRED = "user_id,item_id,score\n1,a,0.9\n1,b,0.8\n2,a,0.3\n"
GOOD_TRUTH = "user_id,item_id\n1,a\n2,b\n"

BAD_INPUTS = {
    # case: (pred content or None for a missing file, truth content, extra args, expected text)
    "missing pred file": (None, GOOD_TRUTH, [], "no such file"),
    "binary pred": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x01", GOOD_TRUTH, [], "binary"),
    "not utf-8": (b"user_id,item_id,score\n1,\xe9t\xe9,0.5\n", GOOD_TRUTH, [], "not UTF-8"),
    "empty pred": ("", GOOD_TRUTH, [], "empty"),
    "header only": ("user_id,item_id,score\n", GOOD_TRUTH, [], "no rows"),
    "missing column": ("user_id,item_id\n1,a\n", GOOD_TRUTH, [], "missing column 'score'"),
    "truth missing column": (GOOD_PRED, "user_id,product\n1,a\n", [], "missing column 'item_id'"),
    "non-numeric score": (GOOD_PRED + "2,b,high\n", GOOD_TRUTH, [], "non-numeric score 'high' at row 4"),
    "NaN score": ("user_id,item_id,score\n1,a,0.9\n1,b,\n", GOOD_TRUTH, [], "NaN score at row 2"),
    "missing user id": ("user_id,item_id,score\n1,a,0.9\n,b,0.1\n", GOOD_TRUTH, [],
                        "empty user_id at row 2"),
    "duplicate pair": (GOOD_PRED + "1,a,0.1\n", GOOD_TRUTH, [],
                       "duplicate prediction for user_id='1', item_id='a'"),
    "ragged csv": ("user_id,item_id,score\n1,a,0.9\n1,b,0.8,7,8\n", GOOD_TRUTH, [], "cannot be parsed"),
    # one field too many on every row: pandas would silently shift the columns
    "extra field": ("user_id,item_id,score\n1,a,0.9,7\n1,b,0.8,7\n", GOOD_TRUTH, [], "cannot be parsed"),
    "k zero": (GOOD_PRED, GOOD_TRUTH, ["--k", "0"], "--k must be an integer >= 1"),
    "k not a number": (GOOD_PRED, GOOD_TRUTH, ["--k", "ten"], "invalid int value"),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_bad_input_gives_one_error_line_and_exit_2(case: str, tmp_path: Path) -> None:
    pred_text, truth_text, extra, expected = BAD_INPUTS[case]
    pred = tmp_path / "pred.csv" if pred_text is None else write(tmp_path, "pred.csv", pred_text)
    truth = write(tmp_path, "truth.csv", truth_text)
    done = run_cli("--pred", str(pred), "--truth", str(truth), "--k", "2", *extra)
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: ")
    assert expected in lines[0]
    assert "Traceback" not in done.stderr
    if "--k" not in extra:
        assert ("truth.csv" if case.startswith("truth") else "pred.csv") in lines[0]


def test_directory_instead_of_truth_file(tmp_path: Path) -> None:
    done = run_cli("--pred", str(write(tmp_path, "pred.csv", GOOD_PRED)), "--truth", str(tmp_path))
    assert done.returncode == 2
    assert done.stderr.startswith("error: truth file") and "not a regular file" in done.stderr
