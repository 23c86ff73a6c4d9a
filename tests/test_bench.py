"""The benchmark command: protocols, the NCF file format and its errors, the CLI."""

import json

import numpy as np
import pandas as pd
import pytest

from recsys_utils.cli import bench
from recsys_utils.cli.bench import prepare, run_benchmark
from recsys_utils.cli.bench_data import BenchData, BenchInputError, read_ncf
from recsys_utils.models import registry


def _frame(n_users=60, n_items=40, per_user=12, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for user in range(n_users):
        weights = np.linspace(2, 1, n_items)
        items = rng.choice(n_items, per_user, replace=False, p=weights / weights.sum())
        rows += [(user, int(item), 1_000_000 + 60 * t + user) for t, item in enumerate(items)]
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "ts"])
    frame["timestamp"] = pd.to_datetime(frame.pop("ts"), unit="s")
    return frame


def _write_ncf(folder, frame, n_neg=20, seed=0, name="toy"):
    """NCF files from a frame: last item per user tests, negatives are never-seen items."""
    split = bench.split_frames(BenchData("toy", frame=frame), "leave-last-out-full", seed)
    train, test = split
    n_items = int(frame["item_id"].max()) + 1
    rng = np.random.default_rng(seed)
    seconds = lambda f: (f["timestamp"].astype("int64") // 10**9).astype(int)  # noqa: E731
    with open(folder / f"{name}.train.rating", "w") as out:
        for u, i, t in zip(train["user_id"], train["item_id"], seconds(train), strict=True):
            out.write(f"{u}\t{i}\t5\t{t}\n")
    test = test.sort_values("user_id")
    with open(folder / f"{name}.test.rating", "w") as out, open(folder / f"{name}.test.negative", "w") as neg:
        for u, i, t in zip(test["user_id"], test["item_id"], seconds(test), strict=True):
            out.write(f"{u}\t{i}\t5\t{t}\n")
            seen = set(frame.loc[frame["user_id"] == u, "item_id"])
            pool = [j for j in range(n_items) if j not in seen]
            picks = rng.choice(pool, n_neg, replace=False)
            neg.write(f"({u},{i})\t" + "\t".join(str(j) for j in picks) + "\n")
    return folder


def test_random_75_25_is_item_stratified_and_excludes_train_items():
    frame = _frame()
    prepared = prepare(BenchData("toy", frame=frame), "random-75-25", seed=1)
    total = prepared.train.item_counts() + prepared.test.item_counts()
    np.testing.assert_array_equal(prepared.train.item_counts(), np.round(0.75 * total))
    assert prepared.train.matrix.multiply(prepared.test.matrix).nnz == 0
    assert prepared.train.nnz + prepared.test.nnz == len(frame)


def test_sampled_negatives_are_unseen_distinct_and_seeded():
    frame = _frame(n_items=200)
    data = BenchData("toy", frame=frame)
    a = prepare(data, "leave-last-out-sampled", seed=3).sampled
    b = prepare(data, "leave-last-out-sampled", seed=3).sampled
    np.testing.assert_array_equal(a.negatives, b.negatives)
    assert not np.array_equal(a.negatives, prepare(data, "leave-last-out-sampled", seed=4).sampled.negatives)
    prepared = prepare(data, "leave-last-out-sampled", seed=3)
    seen = (prepared.train.binary() + prepared.test.binary()).toarray() > 0
    assert a.negatives.shape == (60, bench.N_NEGATIVES)
    rows = np.repeat(a.user_indices, a.negatives.shape[1])
    assert not seen[rows, a.negatives.ravel()].any()
    assert all(len(set(r)) == len(r) for r in a.negatives)


def test_too_few_unseen_items_is_a_clear_error():
    with pytest.raises(ValueError, match="fewer than n_negatives=99"):
        prepare(BenchData("toy", frame=_frame()), "leave-last-out-sampled")


def _brute_force(scores: np.ndarray, positives: np.ndarray, negatives: np.ndarray) -> tuple[float, float]:
    """HR@10 and NDCG@10 with a plain loop, collapsing candidates like the NCF reference (a dict)."""
    hr, ndcg = [], []
    for row, (pos, negs) in enumerate(zip(positives, negatives, strict=True)):
        candidates = {int(i): scores[row, i] for i in negs if i >= 0}
        candidates[int(pos)] = scores[row, pos]
        rank = sum(1 for item, s in candidates.items() if item != pos and s >= scores[row, pos])
        hr.append(rank < 10)
        ndcg.append(1 / np.log2(rank + 2) if rank < 10 else 0.0)
    return float(np.mean(hr)), float(np.mean(ndcg))


def test_sampled_metrics_match_a_brute_force_rank(tmp_path):
    folder = _write_ncf(tmp_path, _frame(n_items=80))
    data = read_ncf(folder, "toy")
    prepared = prepare(data, "leave-last-out-sampled")
    model = bench.MODELS["popularity"].build(0).fit(prepared.train)
    got = bench.score_model(model, prepared, "leave-last-out-sampled")
    protocol = prepared.sampled
    hr, ndcg = _brute_force(model.score(protocol.user_indices), protocol.positives, protocol.negatives)
    assert got["hr@10"] == pytest.approx(hr)
    assert got["ndcg@10"] == pytest.approx(ndcg)
    assert got["candidates_min"] == got["candidates_mean"] == protocol.negatives.shape[1] + 1
    assert got["negative_sampling"] == "given by the NCF file"


def test_ncf_test_item_among_negatives_is_collapsed_like_the_reference(tmp_path):
    folder = _write_ncf(tmp_path, _frame(n_items=80))
    negative = folder / "toy.test.negative"
    lines = negative.read_text().splitlines()
    fields = lines[0].split("\t")
    test_item = fields[0].strip("()").split(",")[1]
    fields[1] = test_item  # the paper's ml-1m file does this on 156 lines
    fields[3] = fields[2]  # and a repeated negative
    lines[0] = "\t".join(fields)
    negative.write_text("\n".join(lines) + "\n")
    data = read_ncf(folder, "toy")
    assert data.notes == {"lines_with_test_item_among_negatives": 1, "lines_with_repeated_negatives": 1,
                          "negatives_dropped": 2}
    prepared = prepare(data, "leave-last-out-sampled")
    model = bench.MODELS["popularity"].build(0).fit(prepared.train)
    got = bench.score_model(model, prepared, "leave-last-out-sampled")
    protocol = prepared.sampled
    hr, ndcg = _brute_force(model.score(protocol.user_indices), protocol.positives, protocol.negatives)
    assert (got["hr@10"], got["ndcg@10"]) == (pytest.approx(hr), pytest.approx(ndcg))
    width = protocol.negatives.shape[1]
    assert got["candidates_min"] == width - 1 and got["candidates_mean"] < width + 1


def test_ncf_bad_inputs_name_file_and_line(tmp_path):
    folder = _write_ncf(tmp_path, _frame(n_items=80))
    negative = folder / "toy.test.negative"
    lines = negative.read_text().splitlines()
    train_item = int((folder / "toy.train.rating").read_text().splitlines()[0].split("\t")[1])
    head = lines[0].split("\t")[0]
    bad = lines.copy()
    bad[0] = head + "\t" + "\t".join([str(train_item)] + lines[0].split("\t")[2:])
    negative.write_text("\n".join(bad) + "\n")
    with pytest.raises(BenchInputError, match=r"toy\.test\.negative:1: a negative is one of the user's training items"):
        read_ncf(folder, "toy")
    bad = lines.copy()
    bad[2] = bad[2].replace("\t", " ", 3)
    negative.write_text("\n".join(bad) + "\n")
    with pytest.raises(BenchInputError, match=r"toy\.test\.negative:3"):
        read_ncf(folder, "toy")
    negative.write_text("\n".join(lines) + "\n")
    rating = folder / "toy.test.rating"
    rows = rating.read_text().splitlines()
    rows[1] = "1\tabc\t5\t0"
    rating.write_text("\n".join(rows) + "\n")
    with pytest.raises(BenchInputError, match=r"toy\.test\.rating:2: .*integers"):
        read_ncf(folder, "toy")
    rows[1] = "1\t100000\t5\t0"
    rating.write_text("\n".join(rows) + "\n")
    with pytest.raises(BenchInputError, match=r"toy\.test\.rating:2: .*out of the training range"):
        read_ncf(folder, "toy")
    with pytest.raises(BenchInputError, match="file not found"):
        read_ncf(folder, "missing")


def test_cli_writes_json_and_rejects_bad_options(tmp_path, capsys):
    folder = _write_ncf(tmp_path, _frame(n_items=80))
    out = tmp_path / "out.json"
    code = bench.main(["--dataset", "ncf", "--data-dir", str(folder), "--name", "toy",
                       "--protocol", "leave-last-out-sampled", "--models", "popularity,ease", "--out", str(out)])
    assert code == 0
    result = json.loads(out.read_text())
    assert set(result) == {"popularity", "ease"}
    assert {"hr@10", "ndcg@10", "fit_seconds"} <= set(result["ease"])
    assert json.loads(capsys.readouterr().out) == result
    assert bench.main(["--dataset", "nope", "--protocol", "random-75-25"]) == 2
    assert "unknown 'nope'" in capsys.readouterr().err
    assert bench.main(["--dataset", "ncf", "--data-dir", str(folder), "--name", "toy",
                       "--protocol", "leave-last-out-sampled", "--models", "popularity,xgb"]) == 2
    assert "unknown xgb" in capsys.readouterr().err


def test_personalised_model_beats_popularity_on_structured_data():
    rng = np.random.default_rng(5)
    groups = rng.integers(0, 4, 200)
    rows = []
    for user, g in enumerate(groups):
        items = rng.choice(np.arange(g * 25, g * 25 + 25), 10, replace=False)
        rows += [(user, int(i), 1_000_000 + 60 * t) for t, i in enumerate(items)]
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "ts"])
    frame["timestamp"] = pd.to_datetime(frame.pop("ts"), unit="s")
    result = run_benchmark(BenchData("toy", frame=frame), "random-75-25", ["popularity", "ease"], log=None)
    assert result["ease"]["ndcg@10"] > 1.5 * result["popularity"]["ndcg@10"]


def test_also_scores_the_same_fit_under_the_sibling_protocol():
    frame = _frame(n_items=200)
    data = BenchData("toy", frame=frame)
    both = run_benchmark(data, "leave-last-out-full", ["ease"], log=None, also=("leave-last-out-sampled",))
    full = run_benchmark(data, "leave-last-out-full", ["ease"], log=None)
    sampled = run_benchmark(data, "leave-last-out-sampled", ["ease"], log=None)
    assert both["ease"]["ndcg@10"] == pytest.approx(full["ease"]["ndcg@10"])
    assert both["ease"]["also"]["leave-last-out-sampled"]["ndcg@10"] == pytest.approx(sampled["ease"]["ndcg@10"])
    with pytest.raises(BenchInputError, match="does not share the split"):
        run_benchmark(data, "random-75-25", ["ease"], log=None, also=("leave-last-out-full",))


def test_every_listed_model_builds_with_its_defaults_and_seed():
    required = {"popularity", "itemknn", "als", "bpr", "ease", "mf", "neumf", "multvae"}
    assert required <= set(bench.MODELS)
    for name, spec in bench.MODELS.items():
        model = spec.build(7)
        for key, value in spec.defaults.items():
            assert getattr(model, key) == value, (name, key)
        if "seed" in spec.defaults or registry.accepts(type(model), "seed"):
            assert model.seed == 7, name


def test_overrides_replace_defaults_and_unknown_names_are_rejected():
    frame = _frame(n_items=200)
    data = BenchData("toy", frame=frame)
    quick = run_benchmark(data, "leave-last-out-full", ["bpr"], log=None, overrides={"bpr": {"epochs": 0}})
    trained = run_benchmark(data, "leave-last-out-full", ["bpr"], log=None,
                            overrides={"bpr": {"epochs": 5, "dim": 8}})
    assert quick["bpr"]["ndcg@10"] != trained["bpr"]["ndcg@10"]
    with pytest.raises(BenchInputError, match="unknown nope"):
        run_benchmark(data, "leave-last-out-full", ["ease"], log=None, overrides={"nope": {}})
    with pytest.raises(TypeError):
        bench.MODELS["ease"].build(0, not_an_argument=1)
