"""World generation by blocks of users (recsys_utils.data.world_behaviour) draws exactly the same world.

The weekly choice tables are built for a block of users at a time so that memory grows with the
events, not with users x items; the random draws are made up front in the walk's order, so any
block size must give the same events, bit for bit, as one block holding every user.
"""

import numpy as np
import pandas as pd
import pytest

import recsys_utils.data.world_behaviour as wb
from recsys_utils.data.world_latent import WorldConfig, make_latent


def _events(config: WorldConfig):
    rng = np.random.default_rng(config.seed)
    _, _, lat = make_latent(config, rng)
    return wb.simulate_events(lat, config, rng), rng.random(3)  # the events and the generator's next draws


@pytest.mark.parametrize("cells", [1, 5_000])
def test_blocks_of_users_give_the_same_events_as_one_block(monkeypatch, cells):
    config = WorldConfig(n_users=150, n_items=120, n_weeks=3, seed=7)
    monkeypatch.setattr(wb, "_BLOCK_CELLS", 10**12)  # one block: the walk over the whole table
    whole, after_whole = _events(config)
    monkeypatch.setattr(wb, "_BLOCK_CELLS", cells)  # two users per block, then ~40 users per block
    assert len(wb._user_blocks(150, 120)) == (75 if cells == 1 else 4)
    blocked, after_blocked = _events(config)
    assert len(whole) > 500
    pd.testing.assert_frame_equal(whole, blocked, check_exact=True)
    assert (after_whole == after_blocked).all()  # the same number of draws was taken


def test_user_blocks_never_leave_one_user_alone():
    assert wb._user_blocks(1, 10) == [slice(0, 1)]
    blocks = wb._user_blocks(7, wb._BLOCK_CELLS // 3)  # three users per block: 3, 4 (not 3, 3, 1)
    assert blocks == [slice(0, 3), slice(3, 7)]


def test_view_blocks_cover_every_view_once_and_keep_users_whole():
    users = np.array([5, 1, 5, 3, 1, 9, 3, 3])
    blocks = wb._view_blocks(users, n_items=wb._BLOCK_CELLS // 2)  # two users per block
    assert sorted(np.concatenate(blocks).tolist()) == list(range(len(users)))
    assert [sorted(set(users[b])) for b in blocks] == [[1, 3], [5, 9]]
