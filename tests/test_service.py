"""The recommendation service over real HTTP on 127.0.0.1: every endpoint, every class of bad request,
the Prometheus format, an atomic reload under concurrent requests; the server is always stopped."""

from __future__ import annotations

import concurrent.futures
import json

import httpx
import numpy as np
import pytest
import scipy.sparse as sp
from prometheus_client.parser import text_string_to_metric_families

from recsys_utils.pipeline.service import ServiceConfig, create_app, serve_in_thread
from recsys_utils.pipeline.serving import Channel, ServingPipeline

N_USERS, N_ITEMS = 40, 30


def make_pipeline(seed: int = 0, version: str = "v1") -> ServingPipeline:
    """A small pipeline of random arrays: an item-item, a factor and a popularity channel, a logistic ranker."""
    rng = np.random.default_rng(seed)
    history = sp.random(N_USERS, N_ITEMS, density=0.15, random_state=seed, format="csr", dtype=np.float32)
    history.data[:] = 1.0
    history = (history + sp.eye(N_USERS, N_ITEMS, format="csr")).tocsr()  # every user has a history...
    keep = np.ones(N_USERS)
    keep[-1] = 0.0  # ...but the last one: known to the model without history
    history = (sp.diags(keep) @ history).tocsr()
    history.eliminate_zeros()
    history.data[:] = 1.0
    weights = rng.random((N_ITEMS, N_ITEMS)).astype(np.float32)
    np.fill_diagonal(weights, 0.0)
    channels = [Channel("ease", "item_item", {"weights": weights}),
                Channel("mf", "factors", {"user_factors": rng.normal(size=(N_USERS, 4)).astype(np.float32),
                                          "item_factors": rng.normal(size=(N_ITEMS, 4)).astype(np.float32)}),
                Channel("popularity", "popularity", {"scores": rng.random(N_ITEMS).astype(np.float32)})]
    meta = {"model_version": version, "run": f"run-{version}", "user_ids": list(range(100, 100 + N_USERS)),
            "item_ids": list(range(500, 500 + N_ITEMS))}
    pipeline = ServingPipeline(channels, history, np.arange(N_ITEMS) % 5, n_recall=10, meta=meta)
    relevant = sp.random(N_USERS, N_ITEMS, density=0.2, random_state=seed + 1, format="csr")
    pipeline.fit_ranker(np.arange(N_USERS), relevant, kind="logistic")
    return pipeline


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    return {"v1": make_pipeline(0, "v1").save(folder / "model.npz"),
            "v2": make_pipeline(1, "v2").save(folder / "model_v2.npz"), "folder": folder}


@pytest.fixture(scope="module")
def server(models):
    app = create_app(ServiceConfig(model_path=models["v1"], max_k=50, max_body_bytes=4096, max_events=20,
                                   sponsored=(503,)))
    with serve_in_thread(app) as url, httpx.Client(base_url=url, timeout=10) as client:
        yield client


def test_recommend_known_unknown_and_folded_in_users(server):
    known = server.get("/recommend", params={"user_id": 101, "k": 5}).json()
    assert known["source"] == "pipeline" and known["model_version"] == "v1"
    assert len(known["items"]) == 5 and set(known["items"]) <= set(range(500, 530))
    assert known["sponsored"] in (503, None) and len(set(known["items"])) == 5
    unknown = server.get("/recommend", params={"user_id": 999, "k": 4}).json()
    assert unknown["source"] == "popularity" and len(unknown["items"]) == 4
    empty = server.get("/recommend", params={"user_id": 100 + N_USERS - 1, "k": 4}).json()
    assert empty["source"] == "popularity" and empty["items"] == unknown["items"]
    answer = server.post("/events", json={"events": [{"user_id": 998, "item_id": 510, "event": "view"},
                                                     {"user_id": 998, "item_id": 511, "event": "purchase"}]})
    assert answer.status_code == 200 and answer.json() == {"accepted": 2, "folded_in_users": 1}
    folded = server.get("/recommend", params={"user_id": 998, "k": 6}).json()
    assert folded["source"] == "session" and not {510, 511} & set(folded["items"])


def test_similar_health_and_popularity_follows_events(server):
    similar = server.get("/similar/505", params={"k": 3}).json()
    assert len(similar["items"]) == 3 and 505 not in similar["items"]
    assert server.get("/health").json()["status"] == "ok"
    many = [{"user_id": 120, "item_id": 529, "event": "purchase", "timestamp": 1e9}] * 20
    assert server.post("/events", json={"events": many}).status_code == 200
    top = server.get("/recommend", params={"user_id": 12345, "k": 3}).json()
    assert top["items"][0] == 529  # decayed popularity moved the bought item to the top of the fallback


HOSTILE = [
    ("get", "/recommend", {"params": {"k": 5}}, 422),  # missing user id
    ("get", "/recommend", {"params": {"user_id": "abc"}}, 422),  # malformed id
    ("get", "/recommend", {"params": {"user_id": -3}}, 422),
    ("get", "/recommend", {"params": {"user_id": "1e400"}}, 422),
    ("get", "/recommend", {"params": {"user_id": str(10**30)}}, 422),  # beyond int64
    ("get", "/recommend", {"params": {"user_id": 101, "k": 0}}, 422),  # k out of range
    ("get", "/recommend", {"params": {"user_id": 101, "k": 10_000}}, 422),
    ("get", "/recommend", {"params": {"user_id": 101, "k": "ten"}}, 422),
    ("get", "/similar/77777", {}, 404),  # unknown item
    ("get", "/similar/x1", {}, 422),
    ("get", "/similar/505", {"params": {"k": -1}}, 422),
    ("post", "/events", {"content": b"{not json"}, 422),
    ("post", "/events", {"content": b"\xff\xfe\x00"}, 422),
    ("post", "/events", {"json": {"events": []}}, 422),
    ("post", "/events", {"json": {"events": [{"user_id": 1, "item_id": 77777, "event": "view"}]}}, 404),
    ("post", "/events", {"json": {"events": [{"user_id": 1, "item_id": 505, "event": "teleport"}]}}, 422),
    ("post", "/events", {"json": {"events": [{"user_id": True, "item_id": 505, "event": "view"}]}}, 422),
    ("post", "/events", {"json": {"events": [{"user_id": 1, "item_id": 505, "event": "view", "x": 1}]}}, 422),
    ("post", "/events", {"json": {"events": [{"user_id": 1, "item_id": 505, "event": "view"}] * 21}}, 413),
    ("post", "/events", {"content": b"[" + b"1," * 5000 + b"1]"}, 413),  # oversized body
    ("post", "/admin/reload", {"json": {"path": "/etc/passwd"}}, 403),
    ("post", "/admin/reload", {"json": {"path": 3}}, 422),
    ("delete", "/recommend", {}, 405),
    ("get", "/nowhere", {}, 404),
]


@pytest.mark.parametrize(("method", "path", "kwargs", "status"), HOSTILE)
def test_every_bad_request_gets_a_one_line_4xx(server, method, path, kwargs, status):
    answer = getattr(server, method)(path, **kwargs) if method != "post" else server.post(path, **kwargs)
    assert answer.status_code == status, answer.text
    reason = answer.json()["error"]
    assert isinstance(reason, str) and reason and "\n" not in reason and "Traceback" not in reason


def test_chunked_oversized_body_is_refused(server):
    def chunks():
        for _ in range(10):
            yield b" " * 1000

    assert server.post("/events", content=chunks()).status_code == 413


def test_refused_model_file_keeps_the_old_one(server, models):
    broken = models["folder"] / "broken.npz"
    broken.write_bytes(b"not a zip at all")
    answer = server.post("/admin/reload", json={"path": str(broken)})
    assert answer.status_code == 422 and "still serving" in answer.json()["error"]
    assert server.get("/health").json()["model_version"] in ("v1", "v2")


def test_metrics_parse_as_prometheus_text(server):
    server.get("/recommend", params={"user_id": 101})
    server.get("/recommend", params={"user_id": "bad"})
    families = {f.name: f for f in text_string_to_metric_families(server.get("/metrics").text)}
    for name in ("recsys_requests", "recsys_request_latency_seconds", "recsys_errors", "recsys_model_info",
                 "recsys_fallback_ratio", "recsys_recommendations"):
        assert name in families, sorted(families)
    samples = families["recsys_request_latency_seconds"].samples
    count = [s.value for s in samples if s.name.endswith("_count") and s.labels["endpoint"] == "/recommend"]
    assert count and count[0] >= 2
    assert any(s.labels["kind"] == "client" and s.value >= 1 for s in families["recsys_errors"].samples)
    info = [s for s in families["recsys_model_info"].samples if s.value == 1]
    assert len(info) == 1 and info[0].labels["run"].startswith("run-")
    assert 0 < families["recsys_fallback_ratio"].samples[0].value < 1


def test_reload_is_atomic_under_concurrent_requests(server, models):
    def hit(n):
        answer = server.get("/recommend", params={"user_id": 100 + n % (N_USERS - 1), "k": 5})
        return answer.status_code, answer.json().get("model_version")

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(hit, n) for n in range(150)]
        swap = server.post("/admin/reload", json={"path": str(models["v2"])})
        results = [f.result() for f in futures]
    assert swap.status_code == 200 and swap.json()["model_version"] == "v2", swap.text
    assert all(status == 200 for status, _ in results), results
    assert {version for _, version in results} <= {"v1", "v2"}
    assert server.get("/recommend", params={"user_id": 101}).json()["model_version"] == "v2"
    info = [s for f in text_string_to_metric_families(server.get("/metrics").text) if f.name == "recsys_model_info"
            for s in f.samples]
    assert [s.labels["version"] for s in info] == ["v2"]
    back = server.post("/admin/reload", content=b"")  # default: the configured file
    assert back.status_code == 200 and json.loads(back.text)["model_version"] == "v1"


def test_load_generator_counts_latencies_and_a_swap_under_load(server, models):
    from recsys_utils.pipeline.loadtest import check_loopback, run_load, swap_under_load

    base = str(server.base_url)
    paths = [f"/recommend?user_id={100 + n % (N_USERS - 1)}&k=5" for n in range(40)]
    result = run_load(base, paths, clients=4)
    assert result.requests == 40 and result.errors == 0 and result.throughput_rps > 0
    assert 0 < result.percentile(50) <= result.percentile(99) <= result.latencies_ms.max()
    bad = run_load(base, ["/recommend?user_id=x"] * 6, clients=2, warmup=0)
    assert bad.errors == 6 and bad.statuses[422] == 6
    swapped, swaps = swap_under_load(base, paths * 2, [models["v2"], models["v1"]], clients=4)
    assert swapped.errors == 0 and [s["status"] for s in swaps] == [200, 200]
    assert set(swapped.versions) <= {"v1", "v2"}
    with pytest.raises(ValueError, match="loopback"):
        check_loopback("http://192.0.2.1:80")


def test_recsys_serve_refuses_bad_options_and_files_with_one_line(tmp_path, capsys):
    from recsys_utils.cli.serve import main

    assert main(["--model", str(tmp_path / "missing.npz"), "--port", "8000"]) == 2
    assert "no such file" in capsys.readouterr().err
    assert main(["--model", str(tmp_path / "missing.npz"), "--port", "70000"]) == 2
    assert "--port" in capsys.readouterr().err
