"""Hostile and careless inputs to every entry point: a clear error or the right number, never a
traceback, never a wrong number with exit status 0, never a user's file deleted (issue: "No silent
wrong answers"). Each case failed before its fix."""

from __future__ import annotations

import io
import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from recsys_utils.cli import bench, bench_data, evaluate

IDEAL_2 = 1 + 1 / math.log2(3)  # ideal DCG of two relevant items


def _files(tmp_path: Path, pred: str, truth: str) -> tuple[str, str]:
    p, t = tmp_path / "pred.csv", tmp_path / "truth.csv"
    p.write_text(pred, encoding="utf-8")
    t.write_text(truth, encoding="utf-8")
    return str(p), str(t)


def _run(argv: list[str], module=evaluate) -> tuple[int, dict | None, str]:
    out, err = io.StringIO(), io.StringIO()
    old = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err
    try:
        code = module.main(argv)
    finally:
        sys.stdout, sys.stderr = old
    text = out.getvalue().strip()
    return code, (json.loads(text) if code == 0 and text else None), err.getvalue()


# ------------------------------------------------------------------------------ evaluate: ids
def test_leading_zero_ids_stay_distinct(tmp_path):
    pred, truth = _files(tmp_path, "user_id,item_id,score\n1,123,0.9\n", "user_id,item_id\n1,0123\n1,123\n")
    code, out, _ = _run(["--pred", pred, "--truth", truth, "--k", "10"])
    assert code == 0
    assert out["recall@10"] == pytest.approx(0.5)
    assert out["ndcg@10"] == pytest.approx(1 / IDEAL_2)  # 0.613, not 1.0


@pytest.mark.parametrize("a, b", [("01", "1"), ("1e3", "1000"), ("1.0", "1"), ("True", "TRUE"),
                                  (str(2**53 + 1), str(2**53))])
def test_ids_that_type_inference_merged_are_different(tmp_path, a, b):
    # an unrelated row with a float id used to turn the whole column into floats
    pred, truth = _files(tmp_path, f"user_id,item_id,score\n1,{a},0.9\n2,0.5,0.1\n", f"user_id,item_id\n1,{b}\n")
    code, out, _ = _run(["--pred", pred, "--truth", truth])
    assert code == 0 and out["hr@10"] == 0.0


def test_the_same_pair_scores_the_same_whatever_the_unrelated_rows(tmp_path):
    results = []
    for extra in ("", "2,x,0.1\n", "2,2.5,0.1\n"):
        pred, truth = _files(tmp_path, f"user_id,item_id,score\n1,7,0.9\n{extra}", "user_id,item_id\n1,7\n")
        results.append(_run(["--pred", pred, "--truth", truth])[1]["hr@10"])
    assert results == [1.0, 1.0, 1.0]


def test_id_type_int_compares_numbers_exactly(tmp_path):
    pred, truth = _files(tmp_path, f"user_id,item_id,score\n01,{2**53 + 1},0.9\n",
                         f"user_id,item_id\n1,{2**53 + 1}\n1,{2**53}\n")
    code, out, _ = _run(["--pred", pred, "--truth", truth, "--id-type", "int"])
    assert code == 0 and out["recall@10"] == pytest.approx(0.5)
    pred, truth = _files(tmp_path, "user_id,item_id,score\n1,1.5,0.9\n", "user_id,item_id\n1,1\n")
    code, _, err = _run(["--pred", pred, "--truth", truth, "--id-type", "int"])
    assert code == 2 and "item_id '1.5' at row 1 (line 2) is not an integer" in err


def test_na_and_null_are_ids(tmp_path):
    pred, truth = _files(tmp_path, "user_id,item_id,score\nNA,null,0.9\nNA,None,0.5\n", "user_id,item_id\nNA,null\n")
    code, out, _ = _run(["--pred", pred, "--truth", truth, "--k", "1"])
    assert code == 0 and out["precision@1"] == 1.0


# ------------------------------------------------------------------------------ evaluate: rules
def test_wrong_delimiter_is_named(tmp_path):
    pred, truth = _files(tmp_path, "user_id;item_id;score\n1;a;0.9\n", "user_id,item_id\n1,a\n")
    code, _, err = _run(["--pred", pred, "--truth", truth])
    assert code == 2 and "separated by semicolons" in err and "comma-separated" in err


def test_malformed_row_names_its_line(tmp_path):
    pred, truth = _files(tmp_path, "user_id,item_id,score\n1,a,0.9\n1,b,0.5,extra\n", "user_id,item_id\n1,a\n")
    code, _, err = _run(["--pred", pred, "--truth", truth])
    assert code == 2 and "line 3" in err


def test_huge_k_gives_the_right_numbers(tmp_path):
    pred, truth = _files(tmp_path, "user_id,item_id,score\n1,a,0.9\n1,b,0.5\n", "user_id,item_id\n1,b\n")
    code, out, _ = _run(["--pred", pred, "--truth", truth, "--k", str(10**12)])
    assert code == 0
    assert out[f"recall@{10**12}"] == 1.0
    assert out[f"ndcg@{10**12}"] == pytest.approx(1 / math.log2(3))
    assert out[f"precision@{10**12}"] == pytest.approx(1e-12)


def test_no_user_overlap_is_an_error(tmp_path):
    pred, truth = _files(tmp_path, "user_id,item_id,score\nu1,a,0.9\n", "user_id,item_id\n1,a\n")
    code, out, err = _run(["--pred", pred, "--truth", truth])
    assert code == 2 and out is None and "no user of truth file" in err


def test_reordering_the_file_never_changes_a_metric(tmp_path):
    rows = ["1,a,0.5", "1,b,0.5", "1,c,0.5", "2,a,0.1", "2,d,0.1"]
    truth_text = "user_id,item_id\n1,b\n2,d\n"
    outs = []
    for order in (rows, rows[::-1], rows[2:] + rows[:2]):
        pred, truth = _files(tmp_path, "user_id,item_id,score\n" + "\n".join(order) + "\n", truth_text)
        outs.append(_run(["--pred", pred, "--truth", truth, "--k", "1"])[1])
    assert outs[0] == outs[1] == outs[2]


def test_help_states_the_rules():
    text = evaluate._parser().format_help()
    for phrase in ("compared exactly", "tied scores are broken by item id", "without predictions scores zero",
                   "only in PRED are left out"):
        assert phrase in text.replace("\n", " ").replace("  ", " "), phrase


def test_the_script_runs_by_its_name(tmp_path):
    script = Path(sys.executable).with_name("recsys-evaluate")
    assert script.exists(), "install the package (make setup) so that [project.scripts] creates recsys-evaluate"
    pred, truth = _files(tmp_path, "user_id,item_id,score\n1,a,0.9\n", "user_id,item_id\n1,a\n")
    done = subprocess.run([str(script), "--pred", pred, "--truth", truth], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["hr@10"] == 1.0


# ------------------------------------------------------------------------------ bench options
@pytest.mark.parametrize("argv, message", [
    (["--seed", "-1"], "--seed must be a non-negative integer"),
    (["--models", ","], "--models ',' names no model"),
])
def test_bench_options_are_named(argv, message):
    code, _, err = _run(["--dataset", "marketplace", "--protocol", "random-75-25", *argv], module=bench)
    assert code == 2 and message in err


def test_bench_out_folder_is_refused_before_any_work(tmp_path):
    code, _, err = _run(["--dataset", "marketplace", "--protocol", "random-75-25", "--models", "popularity",
                         "--out", str(tmp_path)], module=bench)
    assert code == 2 and "is a folder" in err
    assert list(tmp_path.iterdir()) == []  # no *.tmp left behind


def test_bench_rating_file_with_a_repeated_pair_names_both_lines(tmp_path):
    (tmp_path / "toy.train.rating").write_text("0\t1\t5\t10\n1\t2\t5\t10\n0\t1\t4\t11\n")
    (tmp_path / "toy.test.rating").write_text("0\t2\t5\t12\n")
    (tmp_path / "toy.test.negative").write_text("(0,2)\t0\n")
    with pytest.raises(bench_data.BenchInputError, match=r"toy\.train\.rating:3: user 0 and item 1 repeat line 1"):
        bench_data.read_ncf(tmp_path, "toy")


# ------------------------------------------------------------------------------ data loaders and the world
# Small fixtures written here into tmp_path; every test sets $RECSYS_DATA_SOURCE_DIR itself, so none of
# them ever reads ../shared/data.
ML_DATA = "196\t242\t3\t881250949\n186\t302\t3\t891717742\n22\t377\t1\t878887116\n"
ML_USER = "196|49|M|writer|55105\n186|39|F|executive|00000\n22|25|M|writer|40206\n"
RETAIL_HEADER = "InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,CustomerID,Country\n"
RETAIL_ROWS = ("536365,85123A,WHITE HANGING HEART T-LIGHT HOLDER,6,12/1/2010 8:26,2.55,17850,United Kingdom\n"
               "536366,22633,HAND WARMER UNION JACK,6,12/1/2010 8:28,1.85,17850,United Kingdom\n"
               "536367,84879,ASSORTED COLOUR BIRD ORNAMENT,32,12/1/2010 8:34,1.69,13047,United Kingdom\n")


@pytest.fixture
def no_copies(monkeypatch):
    """No local copy is ever searched (never ../shared/data)."""
    from recsys_utils.data import source_files

    monkeypatch.setenv(source_files.SOURCE_ENV, "none")


def _ml100k(folder: Path, title: str = "Kolya (1996)", encoding: str = "latin-1", data: str = ML_DATA) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "u.data").write_text(data)
    items = [f"{i}|{t}|24-Jan-1997||http://x|" + "|".join(["0"] * 5 + ["1"] + ["0"] * 13)
             for i, t in ((242, title), (302, "L.A. Confidential (1997)"), (377, "Heavyweights (1994)"))]
    (folder / "u.item").write_bytes(("\n".join(items) + "\n").encode(encoding))
    (folder / "u.user").write_text(ML_USER)
    return folder


def _zip_folder(folder: Path, archive: Path, prefix: str = "ml-100k") -> Path:
    import zipfile

    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as handle:
        for f in sorted(folder.iterdir()):
            handle.write(f, f"{prefix}/{f.name}")
    return archive


def _retail_zip(path: Path, text: str = RETAIL_HEADER + RETAIL_ROWS) -> Path:
    import zipfile

    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as handle:
        handle.writestr("Online Retail.csv", text)
    return path


def test_retail_zip_bomb_is_refused_without_reading_it_into_memory(tmp_path, no_copies):
    import tracemalloc

    from recsys_utils.data.online_retail import read_online_retail

    bomb = _retail_zip(tmp_path / "bomb.zip", RETAIL_HEADER + " " * (48 << 20))  # 48 MiB in ~50 KB
    assert bomb.stat().st_size < 200_000
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match=r"bomb\.zip.*Online Retail\.csv.*compress"):
            read_online_retail(bomb)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 8 << 20, f"peak {peak / 2**20:.0f} MiB: the member was read whole"


def test_truncated_retail_zip_names_the_file(tmp_path, no_copies):
    from recsys_utils.data.online_retail import read_online_retail
    from recsys_utils.data.source_files import DataFormatError

    good = _retail_zip(tmp_path / "good.zip")
    assert len(read_online_retail(good)) == 3
    cut = tmp_path / "online+retail.zip"
    cut.write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(DataFormatError, match=r"online\+retail\.zip: not a valid zip archive"):
        read_online_retail(cut)


def test_a_corrupt_retail_download_is_not_trusted(tmp_path, no_copies):
    from recsys_utils.data.online_retail import load_online_retail
    from recsys_utils.data.source_files import DataFormatError

    data_dir = tmp_path / "data"
    good = _retail_zip(tmp_path / "good.zip")
    archive = data_dir / "online+retail.zip"
    archive.parent.mkdir(parents=True)
    archive.write_bytes(good.read_bytes()[:100])  # an interrupted copy
    with pytest.raises(DataFormatError, match="not a valid zip archive"):
        load_online_retail(data_dir=data_dir, download=False, progress=False)
    assert not list(data_dir.glob("*.sha256.json")), "the corrupt file's hash was recorded as trusted"
    archive.write_bytes(good.read_bytes())  # the good copy is then accepted, and only then trusted
    data = load_online_retail(data_dir=data_dir, download=False, progress=False)
    assert len(data.interactions) == 3 and str(archive) in data.description
    assert json.loads((data_dir / "online+retail.zip.sha256.json").read_text())["size"] == good.stat().st_size


def test_an_explicit_data_dir_is_never_replaced_by_a_local_copy(tmp_path, monkeypatch):
    from recsys_utils.data import source_files
    from recsys_utils.data.movielens import load_movielens_100k
    from recsys_utils.data.online_retail import load_online_retail

    _ml100k(tmp_path / "copies" / "ml-100k")
    (tmp_path / "copies" / "online-retail").mkdir()
    (tmp_path / "copies" / "online-retail" / "online_retail.csv").write_text(RETAIL_HEADER + RETAIL_ROWS)
    monkeypatch.setenv(source_files.SOURCE_ENV, str(tmp_path / "copies"))
    mine = tmp_path / "mine"
    mine.mkdir()
    with pytest.raises(FileNotFoundError, match=f"movielens-100k: not found in {mine}"):
        load_movielens_100k(data_dir=mine, download=False)
    with pytest.raises(FileNotFoundError, match=f"online-retail: not found in {mine}"):
        load_online_retail(data_dir=mine, download=False)


def test_the_default_data_dir_still_finds_a_local_copy_and_says_so(tmp_path, monkeypatch):
    from recsys_utils.data import source_files
    from recsys_utils.data.datasets import load_dataset

    copy = _ml100k(tmp_path / "copies" / "ml-100k")
    (tmp_path / "project").mkdir()
    monkeypatch.setenv("RECSYS_ROOT", str(tmp_path / "project"))
    monkeypatch.setenv(source_files.SOURCE_ENV, str(tmp_path / "copies"))
    for data_dir in ({}, {"data_dir": tmp_path / "project" / "data"}):  # what the notebooks pass
        data = load_dataset("movielens-100k", download=False, **data_dir)
        assert len(data.interactions) == 3
        assert str(copy) in data.description and data.extras["source"] == str(copy)


def test_bench_with_an_empty_data_dir_fails_clearly_offline(tmp_path, monkeypatch):
    from dataclasses import replace

    from recsys_utils.data import movielens, source_files

    _ml100k(tmp_path / "copies" / "ml-100k")
    monkeypatch.setenv(source_files.SOURCE_ENV, str(tmp_path / "copies"))
    url = (tmp_path / "offline" / "ml-100k.zip").as_uri()  # a download that cannot succeed
    monkeypatch.setattr(movielens, "ML_100K", replace(movielens.ML_100K, url=url))
    empty = tmp_path / "empty"
    empty.mkdir()
    code, _, err = _run(["--dataset", "movielens-100k", "--data-dir", str(empty), "--protocol", "random-75-25",
                         "--models", "popularity"], module=bench)
    assert code == 2 and "Traceback" not in err
    assert url in err and str(empty) in err and "download" in err


def test_a_failed_download_names_the_url_and_the_folder(tmp_path, monkeypatch, no_copies):
    from dataclasses import replace

    from recsys_utils.data import movielens

    url = (tmp_path / "offline" / "ml-100k.zip").as_uri()
    monkeypatch.setattr(movielens, "ML_100K", replace(movielens.ML_100K, url=url))
    with pytest.raises(FileNotFoundError, match=f"{url}.*{tmp_path / 'data'}"):
        movielens.load_movielens_100k(data_dir=tmp_path / "data", progress=False)
    assert not (tmp_path / "data" / "ml-100k.zip").exists()


def test_re_extracting_the_cache_keeps_the_users_files(tmp_path, no_copies):
    from recsys_utils.data.movielens import load_movielens_100k

    data_dir = tmp_path / "data"
    data_dir.mkdir()
    _zip_folder(_ml100k(tmp_path / "src" / "ml-100k"), data_dir / "ml-100k.zip")
    folder = data_dir / "ml-100k"
    folder.mkdir()
    (folder / "my_notes.txt").write_text("my notes")  # no u.data: the cache looks incomplete
    data = load_movielens_100k(data_dir=data_dir, download=False, verify=False)
    assert len(data.interactions) == 3
    assert (folder / "my_notes.txt").read_text() == "my notes"
    assert (folder / "u.data").read_text() == ML_DATA
    assert not [p for p in data_dir.iterdir() if p.name.startswith(".")], "staging left behind"
    # a file the project did not write is never overwritten: a clear refusal instead
    (folder / "u.data").unlink()
    (folder / "u.user").write_text("my own edits")
    with pytest.raises(FileExistsError, match=r"u\.user.*not written by"):
        load_movielens_100k(data_dir=data_dir, download=False, verify=False)
    assert (folder / "u.user").read_text() == "my own edits" and (folder / "my_notes.txt").is_file()


def test_a_corrupt_path_says_what_is_wrong(tmp_path, no_copies):
    from recsys_utils.data.movielens import load_movielens_100k
    from recsys_utils.data.source_files import DataFormatError

    archive = _zip_folder(_ml100k(tmp_path / "src" / "ml-100k"), tmp_path / "ml-100k.zip")
    cut = tmp_path / "cut.zip"
    cut.write_bytes(archive.read_bytes()[:-200])
    with pytest.raises(DataFormatError, match=r"cut\.zip: not a valid zip archive"):
        load_movielens_100k(path=cut, data_dir=tmp_path / "data", verify=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileNotFoundError, match=r"empty: no u\.data in this folder"):
        load_movielens_100k(path=tmp_path / "empty", data_dir=tmp_path / "data")
    with pytest.raises(FileNotFoundError, match=r"nowhere: no such file or folder"):
        load_movielens_100k(path=tmp_path / "nowhere", data_dir=tmp_path / "data")


@pytest.mark.parametrize("encoding", ["utf-8", "latin-1"])
def test_u_item_encoding_is_detected_and_recorded(tmp_path, no_copies, encoding):
    from recsys_utils.data.movielens import load_movielens_100k

    folder = _ml100k(tmp_path / "ml-100k", title="Café Society (Cité) (1996)", encoding=encoding)
    data = load_movielens_100k(path=folder, data_dir=tmp_path / "data")
    assert data.items.set_index("item_id").loc[242, "title"] == "Café Society (Cité) (1996)"
    assert data.extras["encoding"]["u.item"] == encoding
    assert f"u.item: {encoding}" in data.description


def test_negative_movielens_ids_are_refused_with_file_and_line(tmp_path, no_copies):
    from recsys_utils.data.movielens import load_movielens_100k
    from recsys_utils.data.source_files import DataFormatError

    folder = _ml100k(tmp_path / "ml-100k", data=ML_DATA.replace("186\t302", "-186\t302"))
    with pytest.raises(DataFormatError, match=r"u\.data: negative user_id -186 at line 2"):
        load_movielens_100k(path=folder, data_dir=tmp_path / "data")


def test_a_repeated_movielens_rating_names_both_lines(tmp_path, no_copies):
    from recsys_utils.data.movielens import load_movielens_100k
    from recsys_utils.data.source_files import DataFormatError

    folder = _ml100k(tmp_path / "ml-100k", data=ML_DATA + "196\t242\t5\t881250999\n")
    with pytest.raises(DataFormatError, match=r"u\.data: line 4 repeats user_id 196, item_id 242 of line 1"):
        load_movielens_100k(path=folder, data_dir=tmp_path / "data")


def test_clean_online_retail_drops_a_missing_unit_price():
    import pandas as pd

    from recsys_utils.data.retail_cleaning import clean_online_retail

    raw = pd.DataFrame({"InvoiceNo": ["1", "2"], "StockCode": ["85123A", "22633"],
                        "Description": ["x", "y"],
                        "Quantity": pd.array([1, 2], dtype="Int64"),
                        "InvoiceDate": pd.to_datetime(["2011-01-01", "2011-01-02"]),
                        "UnitPrice": [float("nan"), 2.5], "CustomerID": pd.array([7, 8], dtype="Int64"),
                        "Country": ["UK", "UK"]})
    cleaned = clean_online_retail(raw)
    assert list(cleaned.frame["StockCode"]) == ["22633"]
    assert cleaned.audit.loc["online_retail", "dropped:bad_price"] == 1


@pytest.mark.parametrize("setting, value, message", [
    ("n_users", 0, r"n_users = 0 .*at least 1"),
    ("n_users", 2.5, r"n_users = 2\.5 .*whole number"),
    ("n_users", True, r"n_users = True .*whole number"),
    ("n_items", 10, r"n_items = 10 .*at least 32"),
    ("n_weeks", 0, r"n_weeks = 0 .*at least 1"),
    ("seed", -1, r"seed = -1 .*at least 0"),
    ("embedding_dim", 0, r"embedding_dim = 0 .*at least 1"),
    ("share_new_users", 2, r"share_new_users = 2 .*between 0 and 1"),
    ("share_new_items", -0.1, r"share_new_items = -0\.1 .*between 0 and 1"),
    ("review_rate", -1, r"review_rate = -1 .*between 0 and 1"),
    ("promo_share", float("nan"), r"promo_share = nan .*between 0 and 1"),
    ("session_continue", 1.0, r"session_continue = 1\.0 .*below 1"),
    ("same_category", "0.5", r"same_category = '0\.5' .*a number"),
    ("sessions_per_week", 0, r"sessions_per_week = 0 .*above 0"),
    ("activity_sigma", -1, r"activity_sigma = -1 .*between 0 and"),
    ("promo_week", 99, r"promo_week = 99 .*between 0 and 7 \(n_weeks - 1\)"),
    ("start", "someday", r"start = 'someday' .*a date"),
])
def test_world_settings_are_checked(setting, value, message):
    from recsys_utils.data.world import WorldConfig

    with pytest.raises((ValueError, TypeError), match=f"WorldConfig: {message}"):
        WorldConfig(**{setting: value})


def test_world_settings_that_depend_on_each_other():
    from recsys_utils.data.world import WorldConfig, generate

    assert WorldConfig(n_weeks=3).promo_week == 5  # the default: a short period simply has no promotion
    with pytest.raises(ValueError, match=r"WorldConfig: promo_week = 3 .*between 0 and 2 \(n_weeks - 1\)"):
        WorldConfig(n_weeks=3, promo_week=3)
    with pytest.raises(ValueError, match="WorldConfig: promo_week = 99"):
        generate(WorldConfig(), promo_week=99)  # replace() checks again
    with pytest.raises(ValueError, match="generate no events at all"):
        generate(n_users=1, n_items=32, n_weeks=1, promo_week=0, sessions_per_week=0.001, activity_sigma=0)


# ------------------------------------------------------------------------------ saved pipelines
def _saved_pipeline(tmp_path):
    import numpy as np
    import scipy.sparse as sp

    from recsys_utils.data.interactions import IdIndex, Interactions
    from recsys_utils.models import EASE, PopularityRecommender
    from recsys_utils.pipeline.serving import ServingPipeline, channel_from_model

    rng = np.random.default_rng(0)
    matrix = sp.csr_matrix((rng.random((40, 30)) < 0.2).astype(np.float32))
    train = Interactions(matrix, IdIndex(np.arange(40)), IdIndex(np.arange(30)))
    pipeline = ServingPipeline([channel_from_model("ease", EASE(l2=5.0).fit(train)),
                                channel_from_model("popularity", PopularityRecommender().fit(train))],
                               train.matrix, np.arange(30) % 4, n_recall=10)
    later = sp.csr_matrix((rng.random((40, 30)) < 0.2).astype(np.float32))
    pipeline.fit_ranker(np.arange(40), later)
    path = pipeline.save(tmp_path / "pipeline.npz")
    return path, dict(np.load(path)), pipeline.recommend(np.arange(40), k=5)


def _rewrite(tmp_path, data, name="bad.npz", **changes):
    import numpy as np

    out = tmp_path / name
    np.savez(out, **{**data, **changes})
    return out


def _manifest_with(data, **edits):
    import numpy as np

    manifest = json.loads(bytes(data["manifest"]).decode())
    manifest.update(edits)
    return np.frombuffer(json.dumps(manifest).encode(), dtype=np.uint8)


def test_a_good_pipeline_round_trips(tmp_path):
    import numpy as np

    from recsys_utils.pipeline.serving import ServingPipeline

    path, _, lists = _saved_pipeline(tmp_path)
    np.testing.assert_array_equal(ServingPipeline.load(path).recommend(np.arange(40), k=5), lists)
    assert [p.name for p in tmp_path.iterdir()] == ["pipeline.npz"]  # no temporary file left


@pytest.mark.parametrize("case, message", [
    ("empty", "the file is empty"),
    ("truncated", "truncated or corrupt"),
    ("not json", "manifest is not valid JSON"),
    ("string version", "format_version must be the integer 1, got '1'"),
    ("bad n_recall", "manifest 'n_recall' must be a positive integer"),
    ("object array", "object arrays"),
    ("nan array", "holds NaN or infinite values"),
    ("wrong shape", "has shape"),
    ("missing array", "is missing"),
    ("bad history", "history"),
])
def test_a_corrupt_pipeline_is_refused_at_load_naming_the_file(tmp_path, case, message):
    import numpy as np

    from recsys_utils.pipeline.serving import PipelineFormatError, ServingPipeline

    path, data, _ = _saved_pipeline(tmp_path)
    weights = "channel0__weights"
    if case == "empty":
        bad = tmp_path / "bad.npz"
        bad.write_bytes(b"")
    elif case == "truncated":
        bad = tmp_path / "bad.npz"
        bad.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif case == "not json":
        bad = _rewrite(tmp_path, data, manifest=np.frombuffer(b"{not json", dtype=np.uint8))
    elif case == "string version":
        bad = _rewrite(tmp_path, data, manifest=_manifest_with(data, format_version="1"))
    elif case == "bad n_recall":
        bad = _rewrite(tmp_path, data, manifest=_manifest_with(data, n_recall=0))
    elif case == "object array":
        bad = tmp_path / "bad.npz"
        np.savez(bad, **{**data, weights: np.array([object()] * 3, dtype=object)}, allow_pickle=True)
    elif case == "nan array":
        bad = _rewrite(tmp_path, data, **{weights: np.full_like(data[weights], np.nan)})
    elif case == "wrong shape":
        bad = _rewrite(tmp_path, data, **{weights: data[weights][:5]})
    elif case == "missing array":
        bad = _rewrite(tmp_path, {k: v for k, v in data.items() if k != "item_category"})
    else:
        bad = _rewrite(tmp_path, data, history_indices=data["history_indices"] + 1000)
    with pytest.raises(PipelineFormatError) as error:
        ServingPipeline.load(bad)
    assert message in str(error.value) and "bad.npz" in str(error.value)


# ------------------------------------------------------------------------------ property: ids round-trip
_ID_SHAPES = ["01", "1", "1.0", "1e3", "1000", "0123", "123", "True", "TRUE", "NA", "null", "None", "-0", "0",
              str(2**53), str(2**53 + 1), "a,b", 'q"uote', "é", "ümlaut", "0x1F", "1_000"]


def _write_csv(path, header, rows):
    import csv

    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def test_ids_of_mixed_shapes_round_trip_exactly(tmp_path):
    from hypothesis import given, settings
    from hypothesis import strategies as st

    ids = st.one_of(st.sampled_from(_ID_SHAPES),
                    st.text(st.characters(blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp")), min_size=1,
                            max_size=6))

    @settings(max_examples=40, deadline=None, database=None)
    @given(users=st.lists(ids, min_size=1, max_size=5, unique=True),
           items=st.lists(ids, min_size=2, max_size=12, unique=True), data=st.data())
    def check(users, items, data):
        truth, pred = [], []
        for u in users:
            relevant = data.draw(st.lists(st.sampled_from(items), min_size=1, max_size=3, unique=True))
            shown = data.draw(st.lists(st.sampled_from(items), min_size=1, max_size=6, unique=True))
            truth += [(u, i) for i in relevant]
            pred += [(u, i, float(len(shown) - rank)) for rank, i in enumerate(shown)]
        code = {value: n for n, value in enumerate(dict.fromkeys([*users, *items]))}
        _write_csv(tmp_path / "p.csv", ["user_id", "item_id", "score"], pred)
        _write_csv(tmp_path / "t.csv", ["user_id", "item_id"], truth)
        _write_csv(tmp_path / "pi.csv", ["user_id", "item_id", "score"], [(code[u], code[i], s) for u, i, s in pred])
        _write_csv(tmp_path / "ti.csv", ["user_id", "item_id"], [(code[u], code[i]) for u, i in truth])
        as_text = evaluate.evaluate_files(tmp_path / "p.csv", tmp_path / "t.csv", 5)
        as_codes = evaluate.evaluate_files(tmp_path / "pi.csv", tmp_path / "ti.csv", 5, id_type="int")
        assert as_text == pytest.approx(as_codes)

    check()
