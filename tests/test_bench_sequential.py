"""The bench command's next-item protocols (recsys_utils.cli.bench_sequential) against brute force."""

import json

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch

from recsys_utils.cli.bench import main
from recsys_utils.cli.bench_sequential import rank_targets, sample_negatives, split_sequences


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny networks: intra-op threads only spin (and on a loaded machine slow each step many times)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _frame(rows):
    users, items = zip(*rows, strict=True)
    return pd.DataFrame({"user_id": users, "item_id": items,
                         "timestamp": pd.to_datetime(np.arange(len(rows)), unit="s")})


def _random_user_items(n_rows=60, n_items=40, density=0.3, seed=0):
    rng = np.random.default_rng(seed)
    return sp.csr_matrix((rng.random((n_rows, n_items)) < density).astype(np.float32))


def test_split_is_leave_one_out_with_validation_item_in_the_test_input():
    # user 1: 10 11 12 13; user 2: 20 21 22; user 3 has two items: training only
    frame = _frame([(1, 10), (2, 20), (1, 11), (1, 12), (3, 30), (2, 21), (1, 13), (2, 22), (3, 31)])
    split = split_sequences(frame, max_len=5)
    ids = split.train.item_index.to_ids
    assert split.test.keys.tolist() == [1, 2]
    assert ids(split.test.targets).tolist() == [13, 22]
    assert ids(split.validation.targets).tolist() == [12, 21]
    assert (split.test.histories[:, -1] == split.validation.targets).all()  # validation item is test input
    train = {key: ids(row[row >= 0]).tolist() for key, row in zip(split.train.keys, split.train.items, strict=True)}
    assert train == {1: [10, 11], 2: [20], 3: [30, 31]}
    assert split.short_users == 1
    assert split.user_items.toarray().sum(axis=1).tolist() == [4, 3]


@pytest.mark.parametrize("scheme", ["uniform", "popularity"])
def test_sampled_candidates_never_include_the_users_items(scheme):
    user_items = _random_user_items()
    counts = np.arange(user_items.shape[1], dtype=float)  # item 0 has no interaction: never drawn by popularity
    negatives = sample_negatives(user_items, 20, scheme, counts, seed=3)
    assert negatives.shape == (60, 20)
    for row, drawn in enumerate(negatives):
        real = drawn[drawn >= 0]
        assert len(set(real)) == len(real)  # without replacement
        assert not set(real) & set(user_items[row].indices)
        zero_count = scheme == "popularity" and 0 not in user_items[row].indices
        assert len(real) == min(20, 40 - user_items[row].nnz - zero_count)
    if scheme == "popularity":
        assert not (negatives == 0).any()
    assert (sample_negatives(user_items, 20, scheme, counts, seed=3) == negatives).all()  # seeded


def test_popularity_sampling_follows_the_counts():
    user_items = sp.csr_matrix((2000, 4), dtype=np.float32)
    counts = np.array([1.0, 1.0, 1.0, 7.0])
    drawn = sample_negatives(user_items, 1, "popularity", counts, seed=0)[:, 0]
    assert abs((drawn == 3).mean() - 0.7) < 0.04
    with pytest.raises(ValueError, match="--negative-sampling"):
        sample_negatives(user_items, 1, "pop")


def _brute_rank(scores, target, candidates):
    return sum(1 for j in candidates if j != target and scores[j] >= scores[target])


def test_full_and_sampled_ranks_match_brute_force():
    rng = np.random.default_rng(1)
    user_items = _random_user_items(n_rows=30, n_items=25)
    targets = np.array([rng.choice(row.indices) for row in user_items])
    scores = np.round(rng.random((30, 25)), 1)  # many ties: they count against the target
    score_fn = lambda rows: scores[rows[:, 0]]  # noqa: E731
    histories = np.arange(30)[:, None]
    negatives = sample_negatives(user_items, 8, seed=2)
    full = rank_targets(score_fn, histories, targets, user_items, block=7)
    sampled = rank_targets(score_fn, histories, targets, user_items, negatives, block=7)
    for r in range(30):
        unseen = [j for j in range(25) if j not in set(user_items[r].indices)]
        assert full[r] == _brute_rank(scores[r], targets[r], unseen)
        assert sampled[r] == _brute_rank(scores[r], targets[r], [j for j in negatives[r] if j >= 0])
    assert (sampled <= full).all()
    everything = sample_negatives(user_items, 25, seed=0)  # every unseen item: sampled == full
    assert (rank_targets(score_fn, histories, targets, user_items, everything) == full).all()


def _sequence_file(tmp_path, n_users=40, n_items=15, seed=0):
    rng = np.random.default_rng(seed)
    lines = []
    for user in range(1, n_users + 1):
        start = int(rng.integers(n_items))
        lines += [f"{user} {(start + step) % n_items + 1}" for step in range(int(rng.integers(2, 9)))]
    path = tmp_path / "toy.txt"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("protocol", ["leave-one-out-sampled", "leave-one-out-full"])
def test_cli_runs_on_a_sequence_file(tmp_path, protocol, capsys):
    _sequence_file(tmp_path)
    settings = tmp_path / "s.toml"
    settings.write_text("[markov]\n[sasrec]\ndim = 8\nepochs = 1\nmax_len = 8\nblocks = 1\n")
    out = tmp_path / "r.json"
    code = main(["--dataset", "sequences", "--data-dir", str(tmp_path), "--name", "toy", "--protocol", protocol,
                 "--negatives", "5", "--models", "popularity,markov,sasrec", "--settings", str(settings),
                 "--out", str(out)])
    assert code == 0, capsys.readouterr().err
    result = json.loads(out.read_text())
    for name in ("popularity", "markov", "sasrec"):
        entry = result[name]
        assert {"hr@10", "ndcg@10", "protocol", "candidates_mean", "negative_sampling", "fit_seconds"} <= set(entry)
        assert entry["protocol"] == protocol and 0 <= entry["ndcg@10"] <= entry["hr@10"] <= 1
        (other, also), = entry["also"].items()  # the same fit, scored under the other protocol
        sampled, full = (entry, also) if protocol.endswith("sampled") else (also, entry)
        assert other != protocol and sampled["hr@10"] >= full["hr@10"]
    if protocol == "leave-one-out-sampled":
        assert result["markov"]["candidates_mean"] == 6.0 and result["markov"]["hr@10"] == 1.0
    else:
        assert 6 < result["markov"]["candidates_mean"] < 15
    assert result["markov"]["ndcg@10"] > result["popularity"]["ndcg@10"]  # sequences are walks


def test_cli_reports_malformed_file_and_bad_options(tmp_path, capsys):
    (tmp_path / "bad.txt").write_text("1 2\n1 x\n")
    assert main(["--dataset", "sequences", "--data-dir", str(tmp_path / "bad.txt"),
                 "--protocol", "leave-one-out-full", "--models", "markov"]) == 2
    assert "bad.txt:2: user and item must be integers" in capsys.readouterr().err
    path = _sequence_file(tmp_path)
    assert main(["--dataset", "sequences", "--data-dir", str(path), "--protocol", "leave-one-out-sampled",
                 "--models", "markov", "--negative-sampling", "zipf"]) == 2
    assert "--negative-sampling" in capsys.readouterr().err
    assert main(["--dataset", "sequences", "--data-dir", str(path), "--protocol", "leave-one-out-full",
                 "--models", "ease"]) == 2
    assert "not available under leave-one-out-full" in capsys.readouterr().err


def test_settings_files_are_read_and_bad_ones_named(tmp_path):
    from recsys_utils.cli.bench_settings import default_settings, load_settings

    good = tmp_path / "good.toml"
    good.write_text('[sasrec]\nabout = "why"\ndim = 8\nloss = "gbce"\n')
    assert load_settings(good) == {"sasrec": {"dim": 8, "loss": "gbce"}}
    (tmp_path / "bad.toml").write_text("[sasrec\ndim = 8\n")
    with pytest.raises(ValueError, match="bad.toml: not valid TOML"):
        load_settings(tmp_path / "bad.toml")
    (tmp_path / "flat.toml").write_text("dim = 8\n")
    with pytest.raises(ValueError, match="'dim' must be a table"):
        load_settings(tmp_path / "flat.toml")
    for kind in ("ncf", "sequential"):  # the repository's own files parse and name known models
        settings, origin = default_settings(kind)
        assert settings and origin.endswith(f"{kind}.toml")



def test_python_dash_m_recsys_utils_bench_runs_the_issue_command(tmp_path):
    """``python -m recsys_utils.bench ...`` exactly as the issue writes it, in a fresh interpreter."""
    import os
    import subprocess
    import sys

    _sequence_file(tmp_path)
    out = tmp_path / "r.json"
    command = [sys.executable, "-m", "recsys_utils.bench", "--dataset", "sequences", "--data-dir", str(tmp_path),
               "--protocol", "leave-one-out-sampled", "--negatives", "5", "--models", "popularity,markov",
               "--out", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    result = json.loads(out.read_text())
    assert result["markov"]["protocol"] == "leave-one-out-sampled" and result["markov"]["candidates_mean"] == 6.0
    assert json.loads(done.stdout) == result  # the same JSON on stdout and in --out
