"""Regenerate the README's generated regions from the notebooks and build/results.json.

    python scripts/update_readme.py          # rewrite README.md in place
    python scripts/update_readme.py --check  # exit 1 if README.md is out of date

Generated from each notebook's ``metadata.recsys`` (title, learn, datasets) and build/results.json:

* README.md, between ``<!-- BEGIN notebooks -->`` and ``<!-- END notebooks -->``: one row per
  notebook with its datasets, measured CPU minutes and 2-4 headline results (:data:`HEADLINES`);
* docs/results.md (the whole file): every result each notebook recorded with
  ``recsys_utils.course.record``, plus the dataset and library versions of that run;
* README.md, between ``<!-- BEGIN performance -->`` and ``<!-- END performance -->`` (when the
  markers are there): the speed ratios against ``implicit`` and the scaling exponents from
  build/bench.json (``make bench``), with the machine and the thread count.

No number in them is typed by hand: run ``make course`` (or ``make readme`` after it).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from recsys_utils.core.io import atomic_write_text  # noqa: E402
from recsys_utils.course import load_results  # noqa: E402

NOTEBOOK_DIR = ROOT / "notebooks"
PATTERN = "[0-9][0-9]_*.ipynb"
RESULTS_PAGE = ROOT / "docs" / "results.md"
BENCH = ROOT / "build" / "bench.json"
#: build/bench.json's ratio keys and how the performance table names them
SPEED_TASKS = {"als_iteration": "ALS, one iteration", "bpr_epoch": "BPR, one epoch",
               "topk_all_users": "top-10 for every user"}
#: the results shown in the README's notebook table (the rest are in docs/results.md)
HEADLINES = {
    "00_quickstart": ("ndcg@10/popularity", "ndcg@10/ease", "ndcg@10/oracle"),
    "01_data_collection_and_cleaning": ("cleaning/precision/click_log/bot", "cleaning/recall/click_log/bot"),
    "02_user_profiling_and_features": ("segments/ari", "leakage/auc_recency_leaky", "leakage/auc_recency_clean"),
    "03_collaborative_filtering": ("ndcg@10/popularity", "ndcg@10/item-knn", "ndcg@10/als", "ndcg@10/ease"),
    "04_recall_and_ranking": ("recall@200/merged", "ndcg@10/recall_order", "ndcg@10/two_stage"),
    "05_deep_models": ("ndcg@10/ease", "ndcg@10/neumf", "ndcg@10/mult-vae", "ndcg@10/rbm", "auc/deepfm"),
    "06_sequential_models": ("ndcg@10/markov", "ndcg@10/gru4rec", "ndcg@10/sasrec", "ndcg@10/sasrec_loss_bce"),
    "07_deep_retrieval": ("two_tower/recall@200", "two_tower/cold_item_recall@200", "ann/speedup", "lightgcn/ndcg@10"),
    "08_deep_ranking": ("din/auc", "deepfm/auc", "esmm/cvr_bias", "naive_cvr/cvr_bias"),
    "09_content_and_multimodal": ("cold_items/ndcg@10/attributes", "cold_items/ndcg@10/image_cnn",
                                  "cold_items/ndcg@10/multimodal", "world/image_style_r2"),
    "10_complementary_items_and_knowledge_graph": ("complementary/precision@10/similar_items",
                                                   "complementary/precision@10/bought_together",
                                                   "complementary/precision@10/kg", "cold_items/ndcg@10/kg"),
    "11_cross_domain_and_personalised_search": ("search/ndcg@10/bm25", "search/ndcg@10/personalised",
                                                "cross_domain/ndcg@10/single_domain", "cross_domain/ndcg@10/transfer"),
    "12_gan_generated_data": ("gan/popularity_js", "gan/detection_auc", "gan/tstr_ratio"),
    "13_evaluation_and_ab_testing": ("sampled/kendall_tau_ndcg@10", "ab/false_positive_rate", "ab/power"),
    "14_optimisation_and_tuning": ("tuning/ease/test_ndcg@10", "tuning/als/test_ndcg@10", "ndcg@10/ensemble"),
    "15_off_policy_evaluation_and_rl": ("ope/rmse/ips", "ope/rmse/dr", "rl/return/greedy", "rl/return/rl"),
    "16_serving_and_personalisation": ("ndcg@10/ease", "ndcg@10/pipeline_trees_ranker", "serving/p99_ms"),
    "17_deployment_and_monitoring": ("service/p99_ms@8", "service/errors_during_swap", "service/bad_requests_4xx",
                                     "monitor/days_to_alarm"),
    "18_scaling_out_with_spark": ("spark/ndcg@10/als", "ndcg@10/als", "spark/profile_max_abs_diff",
                                  "spark/cleaning_audit_equal"),
    "19_benchmark": ("bench/loo-full/ndcg@10/ease", "bench/loo-full/ndcg@10/als",
                     "bench/loo-full/ndcg@10/popularity"),
}


def cell(text: object) -> str:
    """Text safe inside a Markdown table cell."""
    return str(text).replace("\r", " ").replace("\n", " ").replace("|", "\\|").strip()


def fmt(value: object) -> str:
    """Floats with 4 significant digits (0.05123, 1.000, 1.235e+04); everything else as recorded."""
    if isinstance(value, float):
        return f"{value:#.4g}".rstrip(".")
    return str(value)


def notebook_headers(folder: Path) -> list[tuple[str, dict]]:
    """(name, metadata.recsys) of every course notebook, in order."""
    headers = []
    for path in sorted(folder.glob(PATTERN)):
        try:
            meta = json.loads(path.read_text(encoding="utf-8")).get("metadata", {})
        except json.JSONDecodeError as exc:
            raise SystemExit(f"update_readme: {path} is not valid JSON ({exc})") from exc
        header = meta.get("recsys")
        if not isinstance(header, dict):
            raise SystemExit(f"update_readme: {path} has no metadata.recsys "
                             "(run scripts/check_notebooks.py for what it needs)")
        headers.append((path.stem, header))
    return headers


def headline(name: str, runs: dict) -> str:
    """The notebook's headline results as ``key value`` pairs (keys it did not record are left out)."""
    recorded = runs.get(name, {}).get("results", {})
    shown = [f"{key} {fmt(recorded[key])}" for key in HEADLINES.get(name, ()) if key in recorded]
    return "<br>".join(cell(s) for s in shown) if shown else "not run"


def notebooks_table(headers: list[tuple[str, dict]], results: dict) -> str:
    if not headers:
        return "_No notebooks yet._"
    runs = results.get("notebooks", {})
    lines = ["| # | notebook | what you learn | datasets | CPU minutes | headline results |",
             "|---|---|---|---|---:|---|"]
    for name, header in headers:
        number = name.split("_", 1)[0]
        title = cell(header.get("title", name))
        learn = header.get("learn", "")
        learn = "; ".join(learn) if isinstance(learn, list) else learn
        datasets = ", ".join(str(d) for d in header.get("datasets", []))
        seconds = runs.get(name, {}).get("seconds")
        minutes = f"{seconds / 60:.1f}" if isinstance(seconds, (int, float)) else "not run"
        lines.append(f"| {number} | [{title}](notebooks/{name}.ipynb) | {cell(learn)} | {cell(datasets)} "
                     f"| {minutes} | {headline(name, runs)} |")
    lines.append("")
    lines.append(f"_Datasets: those `make test` runs each notebook on (its metadata). CPU minutes and results: "
                 f"the last full run on dataset `{results.get('dataset')}` (`make course`, or `make test`'s "
                 "run of that dataset); every recorded result is in [docs/results.md](docs/results.md)._")
    return "\n".join(lines)


def results_section(headers: list[tuple[str, dict]], results: dict) -> str:
    # Only notebooks that ran to the end under `make course` (the runner records their seconds).
    runs = {name: entry for name, entry in sorted(results.get("notebooks", {}).items())
            if entry.get("results") and "seconds" in entry}
    if not runs:
        return "_No results yet: run `make course`._"
    titles = dict(headers)
    versions = results.get("versions", {})
    about = [f"dataset `{results.get('dataset')}`"]
    about += [f"{package} {version}" for package, version in versions.items()]
    parts = [f"Recorded by the last full run: {' · '.join(about)}."]
    for name, entry in runs.items():
        title = titles.get(name, {}).get("title")
        parts.append(f"**{cell(title)}** (`{name}`)" if title else f"**`{name}`**")
        rows = ["| result | value |", "|---|---:|"]
        rows += [f"| {cell(key)} | {cell(fmt(value))} |" for key, value in entry["results"].items()]
        parts.append("\n".join(rows))
    return "\n\n".join(parts)


def replace_region(text: str, region: str, body: str, source: Path) -> str:
    begin, end = f"<!-- BEGIN {region} -->", f"<!-- END {region} -->"
    start, stop = text.find(begin), text.find(end)
    if start < 0 or stop < 0 or stop < start:
        raise SystemExit(f"update_readme: {source} needs the markers '{begin}' and '{end}', in that order")
    return text[: start + len(begin)] + "\n" + body.strip() + "\n" + text[stop:]


def _fixed(value: object, digits: int) -> str:
    """A number with ``digits`` decimals; anything else as it is."""
    return f"{value:.{digits}f}" if isinstance(value, (int, float)) else str(value)


def performance_table(bench: dict) -> str:
    """The README's performance region from build/bench.json (``make bench``)."""
    ratios = bench.get("ratios")
    if not ratios:
        return "_No benchmark yet: run `make bench`._"
    seconds, targets = bench.get("seconds", {}), bench.get("targets", {})
    matrix = bench.get("matrix", {})
    lines = ["| task | ours (s) | implicit (s) | ours / implicit | target |", "|---|---:|---:|---:|---:|"]
    for key, label in SPEED_TASKS.items():
        times = seconds.get(key, {})
        lines.append(f"| {label} | {_fixed(times.get('ours', '-'), 3)} | {_fixed(times.get('implicit', '-'), 3)} "
                     f"| {_fixed(ratios.get(key, '-'), 2)} | ≤ {_fixed(targets.get(key, '-'), 1)} |")
    load = bench.get("load_average", {}).get("before", "?")
    lines += ["", f"_Same random matrix ({matrix.get('users', '?')} x {matrix.get('items', '?')}, "
              f"{matrix.get('nnz', '?')} interactions, {matrix.get('factors', '?')} factors), "
              f"{bench.get('threads', '?')} threads on {cell(bench.get('machine', '?'))}, "
              f"load average {load} at the start (`make bench`, benchmarks/bench_cf.py)._"]
    scaling = bench.get("scaling", {}).get("exponents")
    if scaling:
        lines += ["", "| step | seconds ~ events^b | memory ~ events^b |", "|---|---:|---:|"]
        lines += [f"| {step} | {_fixed(e.get('seconds_exponent', '-'), 2)} "
                  f"| {_fixed(e.get('memory_exponent', '-'), 2)} |" for step, e in scaling.items()]
        lines += ["", "_Fitted on log-log axes by benchmarks/bench_scaling.py; table, plot and where each method "
                  "stops fitting one machine: [docs/scaling.md](docs/scaling.md)._"]
    return "\n".join(lines)


def render(readme_text: str, readme: Path, notebooks: Path, results: dict, bench: dict | None = None) -> str:
    headers = notebook_headers(notebooks)
    text = replace_region(readme_text, "notebooks", notebooks_table(headers, results), readme)
    if "<!-- BEGIN performance -->" in text:
        text = replace_region(text, "performance", performance_table(bench or {}), readme)
    return text


def results_page(notebooks: Path, results: dict) -> str:
    """docs/results.md: every recorded result, generated."""
    return ("# Results of the last full run\n\n_Generated by `make readme` from build/results.json; "
            "do not edit._\n\n" + results_section(notebook_headers(notebooks), results).strip() + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--check", action="store_true", help="exit 1 if README.md is out of date")
    parser.add_argument("--readme", type=Path, default=ROOT / "README.md")
    parser.add_argument("--notebooks", type=Path, default=NOTEBOOK_DIR)
    parser.add_argument("--results-page", type=Path, default=RESULTS_PAGE)
    parser.add_argument("--results", type=Path, default=None,
                        help="results.json (default: $RECSYS_BUILD_DIR or build/)")
    parser.add_argument("--bench", type=Path, default=BENCH, help="make bench's JSON (default: build/bench.json)")
    args = parser.parse_args(argv)

    results = load_results(args.results)
    bench = json.loads(args.bench.read_text(encoding="utf-8")) if args.bench.is_file() else {}
    outputs = {args.readme: render(args.readme.read_text(encoding="utf-8"), args.readme, args.notebooks, results,
                                   bench),
               args.results_page: results_page(args.notebooks, results)}
    stale = [path for path, text in outputs.items()
             if not path.is_file() or path.read_text(encoding="utf-8") != text]
    if args.check:
        for path in stale:
            print(f"update_readme: {path} is out of date; run `make readme`")
        if not stale:
            print("update_readme: README.md and docs/results.md are up to date")
        return 1 if stale else 0
    for path in stale:
        atomic_write_text(path, outputs[path])
        print(f"update_readme: rewrote {path}")
    if not stale:
        print("update_readme: already up to date")
    return 0


if __name__ == "__main__":
    sys.exit(main())
