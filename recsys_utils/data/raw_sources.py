"""The marketplace's raw company sources, the way a data team receives them, with known dirt.

A real shop does not hand its recommender team a clean ``interactions`` table: it has a
member-centre table (会员中心数据), a business behaviour log written by the order and favourites
services (用户行为日志), a web-server click log of item page requests (商品点击日志) and the item
catalogue. :func:`make_raw_sources` derives those four tables from the clean world and injects
the defects such tables really carry, recording every defect in a separate ``truth`` table so
the cleaning lesson can score itself row by row.

The clean data is ``world.interactions`` (views come from the click log; favourites, add-to-cart
and purchases from the behaviour log), ``world.cancelled`` (orders cancelled later), ``world.users``
and ``world.items``. Every raw row that is not marked ``drop`` in the truth table corresponds to
exactly one clean row (after its ``fix`` entries are repaired), so a perfect cleaner returns the
clean view.

Injected defects (``reason`` in the truth table, ``action`` drop or fix):

============== ================ ======================================================= ======
source         reason           what                                                    action
============== ================ ======================================================= ======
members        test_account     QA accounts (``qa_``/``test_`` nicknames, ``@test.internal``) drop
members        bot              accounts of scrapers (seen only through their click rate)  drop
members        duplicate        the same member synced twice (a later copy)              drop
members        inconsistent     gender ``female``/`` F``, city case/space/"Shi" variants fix
members        missing          missing ``birth_year`` or ``gender``                     fix
behaviour_log  test_account     events of QA accounts                                    drop
behaviour_log  duplicate        exact retries, and near retries (new log id, < 1 s later) drop
behaviour_log  unknown_item     item ids that are not in the catalogue (deleted items)    drop
behaviour_log  bad_quantity     purchases with quantity 0, negative or > 100              drop
behaviour_log  bad_price        purchases with unit price <= 0 or absurdly high          drop
behaviour_log  cancellation     purchases of cancelled orders and the ``cancel`` records  drop
behaviour_log  missing          purchases with no ``unit_price`` (restorable from catalogue) fix
click_log      duplicate        the same request logged twice                             drop
click_log      bad_timestamp    epoch 0 and 2038-01-19 timestamps                        drop
click_log      bot              crawler user agents, and scraper accounts (inhuman rate)  drop
click_log      test_account     page views of QA accounts                                drop
click_log      anonymous        requests with no user id (cannot be attributed)           drop
click_log      unknown_item     item ids that are not in the catalogue                   drop
click_log      clock_skew       one server logged local time (UTC+8) for two days         fix
catalogue      duplicate        an item exported twice                                   drop
catalogue      bad_price        price 0, negative, or ten times too high (typo)           fix
catalogue      inconsistent     brand in other case / with stray spaces                  fix
catalogue      missing          missing ``category_path``                                fix
============== ================ ======================================================= ======

The tables are built in :mod:`~recsys_utils.data.raw_master` (members, catalogue) and
:mod:`~recsys_utils.data.raw_logs` (behaviour log, click log), each with a
:class:`~recsys_utils.data.raw_truth.TruthBuilder`. Everything is vectorised and deterministic for
``world.config.seed``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from recsys_utils.core.vocabulary import ITEM
from recsys_utils.data.raw_logs import behaviour_log, click_log
from recsys_utils.data.raw_master import catalogue_table, members_table
from recsys_utils.data.raw_truth import DROP, FIX

SOURCES = ("members", "behaviour_log", "click_log", "catalogue")


@dataclass
class RawSources:
    """The four raw tables and the truth table of their injected defects.

    ``truth`` has columns ``source, row, reason, action``: ``row`` is the row's index label in
    that raw table; a row to drop appears once, a row to fix once per defect.
    """

    members: pd.DataFrame
    behaviour_log: pd.DataFrame
    click_log: pd.DataFrame
    catalogue: pd.DataFrame
    truth: pd.DataFrame
    notes: dict = field(default_factory=dict)

    def tables(self) -> dict[str, pd.DataFrame]:
        """The four raw tables by source name."""
        return {name: getattr(self, name) for name in SOURCES}

    def summary(self) -> pd.DataFrame:
        """Rows, dirty rows and dirty share per source (from the truth table)."""
        rows = {}
        for name, frame in self.tables().items():
            t = self.truth[self.truth["source"] == name]
            rows[name] = {"rows": len(frame),
                          "rows_to_drop": int((t["action"] == DROP).sum()),
                          "rows_to_fix": int(t.loc[t["action"] == FIX, "row"].nunique())}
        out = pd.DataFrame.from_dict(rows, orient="index")
        out["dirty_share"] = (out["rows_to_drop"] + out["rows_to_fix"]) / out["rows"]
        return out

    def truth_counts(self) -> pd.DataFrame:
        """Number of truth rows per source, reason and action."""
        return (self.truth.groupby(["source", "reason", "action"]).size()
                .rename("rows").reset_index())



def make_raw_sources(world, n_test_accounts: int = 12, n_scrapers: int = 6) -> RawSources:
    """Derive the four raw sources and their truth table from a :class:`Marketplace`.

    Deterministic for ``world.config.seed``. The share of dirty rows is a few percent per
    defect, about 8-15% of all rows per source.
    """
    rng = np.random.default_rng([world.config.seed, 20240304])
    members, t_members, test_ids, scraper_ids = members_table(world, rng, n_test_accounts, n_scrapers)
    catalogue, t_catalogue = catalogue_table(world, rng)
    known = world.items[ITEM].to_numpy()
    pool = np.setdiff1d(np.arange(known.min() - 5000, known.min()), known)
    unknown_ids = rng.choice(pool, size=min(60, len(pool)), replace=False)
    behaviour, t_behaviour = behaviour_log(world, rng, test_ids, unknown_ids)
    clicks, t_clicks, notes = click_log(world, rng, test_ids, scraper_ids, unknown_ids)
    truth = pd.concat([t_members, t_behaviour, t_clicks, t_catalogue], ignore_index=True)
    truth["row"] = truth["row"].astype(np.int64)
    notes.update({"test_accounts": np.sort(test_ids), "scraper_accounts": np.sort(scraper_ids),
                  "unknown_items": np.sort(unknown_ids)})
    return RawSources(members, behaviour, clicks, catalogue, truth, notes)


__all__ = ["RawSources", "make_raw_sources", "SOURCES"]
