"""Graders of notebook 01 (data collection, integration, cleaning and splitting): the rules by hand.

01.1 retries dropped with an audit (exact duplicates, then near retries within a window; against
:class:`~recsys_utils.data.cleaning_audit.AuditTrail` with
:func:`~recsys_utils.data.cleaning_rules.exact_duplicates` and
:func:`~recsys_utils.data.cleaning_rules.near_duplicates`), 01.2 scrapers by request rate (against
:func:`~recsys_utils.data.cleaning_rules.inhuman_rate_accounts`), 01.3 sessions with a gap (against
:func:`~recsys_utils.data.integration.sessionise`) and 01.4 the leave-last-out test rows (against
:func:`~recsys_utils.data.splits.leave_last_out`). Each fixture is small and hostile on purpose:
unsorted rows, ties in time, values exactly at a threshold, missing ids.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from recsys_utils.course.graders.registry import grader
from recsys_utils.data.cleaning_audit import AuditTrail
from recsys_utils.data.cleaning_rules import exact_duplicates, inhuman_rate_accounts, near_duplicates
from recsys_utils.data.integration import sessionise
from recsys_utils.data.splits import leave_last_out

RETRY_KEYS = ["user_id", "item_id", "event_type", "order_id"]
T0 = pd.Timestamp("2024-03-01 09:00")


def _behaviour_log(rng: np.random.Generator, n: int = 160) -> pd.DataFrame:
    """A shuffled behaviour log with exact copies, near retries, retry chains and missing order ids."""
    event = rng.choice(["favorite", "add_to_cart", "purchase"], size=n)
    log = pd.DataFrame({
        "log_id": np.arange(n),
        "user_id": rng.integers(0, 4, size=n),
        "item_id": rng.integers(0, 3, size=n),
        "event_type": event,
        "event_time": T0 + pd.to_timedelta(rng.integers(0, 40_000, size=n), unit="ms"),
        "order_id": np.where(event == "purchase", rng.integers(900, 903, size=n), np.nan),
    })
    retries = log.sample(25, random_state=1).copy()  # a client retry: new log id, a little later
    retries["log_id"] = np.arange(n, n + 25)
    retries["event_time"] += pd.to_timedelta(rng.integers(0, 700, size=25), unit="ms")
    chain = retries.head(5).copy()  # a second retry of the retry
    chain["log_id"] = np.arange(n + 25, n + 30)
    chain["event_time"] += pd.Timedelta(milliseconds=300)
    edge = log.head(3).copy()  # exactly one window later: not a retry
    edge["log_id"] = np.arange(n + 30, n + 33)
    edge["event_time"] += pd.Timedelta(milliseconds=500)
    copies = log.sample(12, random_state=2)  # logged twice: every field equal
    frame = pd.concat([log, retries, chain, edge, copies], ignore_index=True)
    return frame.sample(frac=1.0, random_state=3).reset_index(drop=True)


def _expected_reasons(log: pd.DataFrame, window: pd.Timedelta) -> tuple[np.ndarray, dict]:
    trail = AuditTrail("behaviour_log", log.index)
    trail.drop(exact_duplicates(log), "duplicate")
    trail.drop(near_duplicates(log, RETRY_KEYS, "event_time", window, trail.kept), "retry")
    return trail.reason, trail.summary()


@grader("01.1")
def drop_retries(learner) -> str:
    """``learner(log, window)`` gives each row's drop reason as the package's audited rules do."""
    rng = np.random.default_rng(11)
    for window in (pd.Timedelta(milliseconds=500), pd.Timedelta(seconds=5)):
        log = _behaviour_log(rng)
        expected, summary = _expected_reasons(log, window)
        got = learner(log.copy(), window)
        assert got is not None, "drop_retries returned None: return a Series of reasons (None for a kept row)"
        got = pd.Series(got)
        assert len(got) == len(log), f"return one reason per row of the log ({len(log)}), got {len(got)}"
        got = got.to_numpy(dtype=object)
        got = np.where(pd.isna(got), None, got)
        bad = [i for i in range(len(log)) if got[i] != expected[i]]
        if bad:
            i = bad[0]
            raise AssertionError(
                f"window {window}: row {i} ({log.iloc[i][RETRY_KEYS + ['event_time']].to_dict()}) should be "
                f"{expected[i]!r}, got {got[i]!r}; {len(bad)} rows differ. Drop exact copies first; among the "
                "other rows sort each (user, item, event, order) group by time - a missing order_id is a key "
                "too - and drop a row less than `window` after the previous row of its group")
        counts = pd.Series(got[got != None]).value_counts()  # noqa: E711 - object array of reasons
        kept = int((got == None).sum())  # noqa: E711
        assert len(log) == kept + int(counts.sum())
        assert counts.get("duplicate", 0) == summary["dropped:duplicate"]
        assert counts.get("retry", 0) == summary["dropped:retry"]
    return ("drop reasons equal recsys_utils' AuditTrail with exact_duplicates then near_duplicates "
            "(two windows); rows in = kept + duplicate + retry")


def _click_log(rng: np.random.Generator) -> pd.DataFrame:
    """Requests of people (slow), scrapers (fast), a scraper that paused, accounts at the thresholds."""
    parts = []
    for user in range(12):  # people: tens of seconds between pages
        gaps = rng.exponential(40_000, size=int(rng.integers(5, 60)))
        parts.append(pd.DataFrame({"user_id": float(user), "ts_ms": np.cumsum(gaps).astype(np.int64)}))
    for user in (100, 101):  # scrapers: a page every 1-2 s
        gaps = rng.uniform(1_000, 2_000, size=80)
        parts.append(pd.DataFrame({"user_id": float(user), "ts_ms": np.cumsum(gaps).astype(np.int64)}))
    gaps = np.r_[rng.uniform(800, 1_500, size=60), 3_600_000, rng.uniform(800, 1_500, size=60)]
    parts.append(pd.DataFrame({"user_id": 102.0, "ts_ms": np.cumsum(gaps).astype(np.int64)}))  # lunch break
    parts.append(pd.DataFrame({"user_id": 103.0, "ts_ms": np.arange(29) * 1_000}))  # fast, one request short
    parts.append(pd.DataFrame({"user_id": 104.0, "ts_ms": np.arange(40) * 2_500}))  # median exactly the limit
    parts.append(pd.DataFrame({"user_id": 105.0, "ts_ms": np.arange(30) * 2_000}))  # exactly 30 requests
    parts.append(pd.DataFrame({"user_id": np.nan, "ts_ms": np.arange(200) * 100}))  # anonymous visitors
    frame = pd.concat(parts, ignore_index=True)
    frame["ts_ms"] += 1_700_000_000_000
    return frame.sample(frac=1.0, random_state=4).reset_index(drop=True)


@grader("01.2")
def scraper_ids(learner) -> str:
    """``learner(user_ids, times_ms, max_median_gap_s, min_requests)`` flags the package's scrapers."""
    clicks = _click_log(np.random.default_rng(12))
    for limit, minimum in ((2.5, 30), (45.0, 10)):
        stats = inhuman_rate_accounts(clicks["user_id"], clicks["ts_ms"], limit, minimum)
        expected = sorted(int(u) for u in stats.index[stats["scraper"]])
        got = learner(clicks["user_id"].copy(), clicks["ts_ms"].copy(), limit, minimum)
        assert got is not None, "scraper_ids returned None: return the flagged user ids"
        got = sorted(int(u) for u in pd.Series(list(got)).dropna())
        missed, extra = sorted(set(expected) - set(got)), sorted(set(got) - set(expected))
        assert not missed and not extra, (
            f"max_median_gap_s={limit}, min_requests={minimum}: missed {missed}, wrongly flagged {extra}. Sort "
            "each account's requests by time, take the MEDIAN gap in seconds (one long pause must not hide a "
            "scraper), flag accounts with >= min_requests requests and a median gap strictly below the limit; "
            "requests without a user id belong to nobody")
    return "flagged accounts equal recsys_utils' inhuman_rate_accounts for two settings"


def _events(rng: np.random.Generator) -> pd.DataFrame:
    """Interleaved users, unsorted rows, ties, and gaps exactly equal to 30 minutes."""
    n = 300
    users = rng.choice([7, 3, 11, 5], size=n)
    minutes = rng.choice(np.r_[0, 1, 5, 29, 30, 31, 45, 120], size=n, p=[.1, .3, .2, .1, .15, .05, .05, .05])
    base = T0 + pd.to_timedelta(np.cumsum(minutes), unit="min")
    frame = pd.DataFrame({"user_id": users, "item_id": rng.integers(0, 9, size=n), "timestamp": base,
                          "event": "view"})
    frame = frame.sample(frac=1.0, random_state=5)
    frame.index = rng.permutation(np.arange(1000, 1000 + n))  # a non-default index
    return frame


@grader("01.3")
def session_ids(learner) -> str:
    """``learner(events, gap)`` numbers sessions as ``sessionise`` does."""
    rng = np.random.default_rng(13)
    for gap in (pd.Timedelta(minutes=30), pd.Timedelta(minutes=5)):
        events = _events(rng)
        # per user, times exactly `gap` apart and a tie
        expected = sessionise(events, gap=gap)["session_id"].to_numpy()
        got = learner(events.copy(), gap)
        assert got is not None, "session_ids returned None: return one session id per row"
        got = np.asarray(got).astype(np.int64)
        assert got.shape == expected.shape, f"one session id per row ({expected.size}), got shape {got.shape}"
        if not np.array_equal(got, expected):
            i = int(np.flatnonzero(got != expected)[0])
            raise AssertionError(
                f"gap {gap}: row {i} (user {events['user_id'].iloc[i]}, {events['timestamp'].iloc[i]}) should be "
                f"in session {expected[i]}, got {got[i]}. Sort by (user, time), start a new session at a new user "
                "or after a gap LONGER than `gap` (exactly `gap` stays in the session), number the sessions "
                "1, 2, ... in that order and return them in the input's row order")
    return "session ids equal recsys_utils.data.integration.sessionise for gaps of 30 and 5 minutes"


@grader("01.4")
def leave_last_out_mask(learner) -> str:
    """``learner(frame, n_test, min_train)`` marks the rows ``leave_last_out`` holds out."""
    rng = np.random.default_rng(14)
    n = 120
    frame = pd.DataFrame({"user_id": rng.choice(list("abcdefg"), size=n, p=[.3, .2, .2, .1, .1, .05, .05]),
                          "item_id": rng.integers(0, 20, size=n),
                          "timestamp": T0 + pd.to_timedelta(rng.integers(0, 15, size=n), unit="D")})
    frame = pd.concat([frame, pd.DataFrame({"user_id": ["solo", "pair", "pair"], "item_id": [1, 2, 3],
                                            "timestamp": [T0, T0, T0]})], ignore_index=True)
    frame.index = np.arange(len(frame))[::-1] * 3  # a non-default index
    for n_test, min_train in ((1, 1), (2, 1), (1, 3)):
        expected = frame.index.isin(leave_last_out(frame, n_test=n_test, min_train=min_train).test.index)
        got = learner(frame.copy(), n_test, min_train)
        assert got is not None, "leave_last_out_mask returned None: return a boolean mask, True = test"
        got = np.asarray(got, dtype=bool)
        assert got.shape == expected.shape, f"one flag per row ({expected.size}), got shape {got.shape}"
        if not np.array_equal(got, expected):
            i = int(np.flatnonzero(got != expected)[0])
            raise AssertionError(
                f"n_test={n_test}, min_train={min_train}: row {i} (user {frame['user_id'].iloc[i]!r}, "
                f"{frame['timestamp'].iloc[i]}) should be {'test' if expected[i] else 'train'}. Hold out each "
                "user's latest n_test rows (ties in time: the later row in the frame is the later event), and "
                "keep users with fewer than min_train + n_test rows wholly in train")
    return "test rows equal recsys_utils.data.splits.leave_last_out for three settings, with ties in time"
