"""Suite-wide pytest configuration: the ``slow`` marker for the tests listed below.

``make unit`` runs ``pytest -m "not slow"`` (under a minute on a 2-core machine); ``make test`` runs
everything. The marker is registered in pyproject.toml (``--strict-markers``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent

#: The tests that take more than ~1.5 s each on a 2-core CPU machine, measured with
#: ``pytest -q tests --durations=40`` and, because the machine was shared while this list was made,
#: with each test's CPU seconds (process + subprocesses, the comments; on an idle machine a test's
#: wall time is about its CPU time). The whole suite is ~64 CPU s, these ~27 s of it. Node ids are
#: relative to tests/, without parameters (a listed test marks all of its parametrisations).
#: Not listed: test_world.py's first test, whose ~4 s are the module-scoped ``world``/``events``
#: fixtures that every test in that file shares (marking it would move that cost to the next test).
#: Re-measure and update this list when a test gets much slower or faster.
SLOW_TESTS: set[str] = {
    "test_rl.py::test_reinforce_learns_to_rotate_where_repetition_drives_users_away",  # ~2 (25 rollouts)
    "test_generative.py::test_gan_trains_samples_and_is_seeded",  # 8.8
    "test_cf_models.py::test_torch_bpr_learns_block_structure",  # 3.9
    "test_two_tower.py::test_new_items_get_vectors_from_attributes_alone",  # ~2 (15 epochs, two towers)
    "test_sequential.py::test_sequence_models_learn_what_a_markov_chain_cannot",  # 1.3 + 0.9 + 0.8
    "test_features.py::test_segment_users_finds_planted_clusters",  # 2.1
    "test_generative.py::test_gan_learns_the_planted_groups",  # 2.1
    "test_synthetic.py::test_detection_auc_separates_and_not",  # 1.5 (18 s wall in an earlier version)
    "test_cf_models.py::test_als_loss_decreases_and_matches_its_definition",  # 1.4
    "test_bench.py::test_cli_writes_json_and_rejects_bad_options",  # 1.4
    "test_cf_models.py::test_als_cholesky_solver_matches_many_cg_steps",  # 1.3
    "test_world.py::test_segments_are_visible_in_behaviour",  # 1.3
    "test_tracking.py::test_tracker_logs_what_the_loop_computed_and_reads_back",  # 5.0 wall at load 11 (issue 20)
    "test_service.py::test_load_generator_counts_latencies_and_a_swap_under_load",  # 3.6 wall at load 11
    "test_sequential_losses.py::test_every_loss_trains_sasrec_on_a_cycle",  # 4 x 1.3 (one thread)
    "test_bench_sequential.py::test_cli_runs_on_a_sequence_file",  # 2 x 1.0 (one thread)
    "test_bench_sequential.py::test_python_dash_m_recsys_utils_bench_runs_the_issue_command",  # 4.5 (new process)
    "test_multitask.py::test_esmm_recovers_a_planted_funnel",  # 17 s wall under load 10 (~190 Adam steps)
    "test_din.py::test_din_learns_a_target_behaviour_match",  # 9 s wall under load 10 (~130 Adam steps)
    "test_content_towers.py::test_cold_start_model_beats_an_attribute_free_baseline",  # 2 x ~2 (ALS + 25 epochs)
    "test_world_images.py::test_images_carry_the_style_and_attributes_do_not",  # ~1.5 (ridge probes, 800 items)
    "test_world_complements.py::test_default_world_minus_followups_is_the_old_world",  # ~8 (two default worlds)
    "test_world_complements.py::test_the_relation_shows_up_in_the_purchases",  # ~4 world + ~3 brute-force lift
}

#: Single parametrisations that are slow where the rest of their test is fast (full node ids, with
#: the parameter): the Spark exercises start a JVM (notebook 18).
SLOW_CASES: set[str] = {
    "test_exercises.py::test_check_passes_on_the_solution_and_fails_on_stub_and_wrong_answer[18.1]",
    "test_exercises.py::test_check_passes_on_the_solution_and_fails_on_stub_and_wrong_answer[18.2]",
}


def _node_id(item: pytest.Item, keep_parameters: bool = False) -> str:
    """``test_file.py::test_name`` (class included, parameters dropped), relative to tests/."""
    path = Path(str(item.path)).resolve()
    try:
        relative = path.relative_to(TESTS).as_posix()
    except ValueError:  # collected from outside tests/ (e.g. notebooks under nbval)
        return ""
    name = item.nodeid.split("::", 1)[1] if "::" in item.nodeid else item.name
    return f"{relative}::{name if keep_parameters else name.split('[', 1)[0]}"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if _node_id(item) in SLOW_TESTS or _node_id(item, keep_parameters=True) in SLOW_CASES:
            item.add_marker(pytest.mark.slow)
