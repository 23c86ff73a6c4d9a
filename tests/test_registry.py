"""The model registry (recsys_utils.models.registry): every name builds, fits and scores; the tuning
helpers take a registered name as well as a factory; ``repr`` shows a model's knobs."""

import numpy as np
import pandas as pd
import pytest

from recsys_utils.data.interactions import IdIndex, Interactions
from recsys_utils.models import ALS, EASE, BiasBaseline, registry
from recsys_utils.models.base import Recommender, constructor_parameters, knobs
from recsys_utils.tuning.search import grid_search, model_factory, optuna_search, random_search, validation_score

N_USERS, N_ITEMS = 30, 16


def _market(seed: int = 0, n: int = 700, days: int = 20):
    """Two user segments clicking items of 'their' category, with the side tables some models need."""
    rng = np.random.default_rng(seed)
    items = pd.DataFrame({"item_id": np.arange(N_ITEMS) + 100, "category": np.where(np.arange(N_ITEMS) % 2, "A", "B"),
                          "top_category": "all", "brand": rng.choice(["x", "y"], N_ITEMS),
                          "price": rng.uniform(5, 100, N_ITEMS), "launch_time": pd.Timestamp("2024-01-01")})
    users = pd.DataFrame({"user_id": np.arange(N_USERS) + 1, "gender": np.where(np.arange(N_USERS) % 2, "F", "M"),
                          "age": rng.integers(18, 60, N_USERS), "city_tier": rng.integers(1, 4, N_USERS)})
    user = rng.integers(0, N_USERS, n)
    same = rng.random(n) < 0.9
    item = 2 * rng.integers(0, N_ITEMS // 2, n) + np.where(same, user % 2, 1 - user % 2)
    events = pd.DataFrame({
        "user_id": user + 1, "item_id": item + 100,
        "timestamp": pd.Timestamp("2024-02-01") + pd.to_timedelta(np.sort(rng.uniform(0, days, n)), unit="D"),
        "event": "view", "device": rng.choice(["app", "web"], n), "session_id": np.arange(n),
    })
    return events, items, users


@pytest.fixture(scope="module")
def market():
    events, items, users = _market()
    user_index = IdIndex(users.user_id.to_numpy(), "user_id")
    item_index = IdIndex(items.item_id.to_numpy(), "item_id")
    cut = events.timestamp.quantile(0.8)
    frame = lambda rows: Interactions.from_frame(rows, user_index, item_index, weight=None, binary=True)  # noqa: E731
    return {"events": events, "items": items, "users": users, "all": frame(events),
            "train": frame(events[events.timestamp < cut]), "validation": frame(events[events.timestamp >= cut])}


def side_inputs(name: str, market: dict) -> dict:
    """The data arguments of the models that cannot be built from defaults alone."""
    features = pd.get_dummies(market["items"][["category", "brand"]]).to_numpy(dtype=np.float32)
    return {
        "content": {"item_features": features},
        "attribute-hybrid": {"factor_model": ALS(dim=4, epochs=2, device="cpu"), "item_features": features},
        "group-popularity": {"users": market["users"]},
        "category-popularity": {"item_categories": market["items"].category.to_numpy()},
        "deepfm": {"events": market["events"], "items": market["items"], "users": market["users"], "epochs": 2},
        "multimodal": {"factor_model": ALS(dim=4, epochs=2, device="cpu"), "items": market["items"],
                       "modalities": ("attributes",), "epochs": 2},
    }.get(name, {})


NEEDS_DATA = {"content", "attribute-hybrid", "group-popularity", "category-popularity", "deepfm", "multimodal"}


def test_names_are_sorted_and_cover_the_protocol():
    names = registry.names()
    assert names == sorted(registry.MODELS) and len(names) == len(set(names)) >= 20
    assert all(issubclass(registry.model_class(n), Recommender) for n in names)


@pytest.mark.parametrize("name", registry.names())
def test_every_name_builds_fits_and_scores(name, market):
    if name in NEEDS_DATA:  # a data argument without a default: building without it is a TypeError
        with pytest.raises(TypeError):
            registry.create(name)
    model = registry.create(name, seed=5, **side_inputs(name, market))
    assert isinstance(model, registry.model_class(name))
    train = market["all"]
    users = np.array([0, 3, 7, 29])
    scores = model.fit(train).score(users)
    assert scores.shape == (len(users), N_ITEMS), name
    assert np.isfinite(scores).all(), name
    top = model.recommend_indices(users, k=5)
    assert top.shape == (len(users), 5)
    seen = train.matrix[users].toarray() > 0
    assert not any(seen[row, i] for row, items in enumerate(top) for i in items if i >= 0), name


def test_unknown_names_list_the_registered_ones(market):
    with pytest.raises(ValueError, match="unknown model 'nope'") as error:
        registry.create("nope")
    assert all(f"'{name}'" in str(error.value) for name in registry.names())
    with pytest.raises(ValueError, match="unknown model 'alss'"):
        grid_search("alss", {"dim": [2]}, market["train"], market["validation"])
    with pytest.raises(TypeError, match="registered model name"):
        model_factory(42)


def test_create_passes_seed_only_where_accepted(market):
    assert registry.accepts(ALS, "seed") and registry.accepts(registry.MODELS["ncf-mlp"], "seed")  # via **kwargs
    assert not registry.accepts(EASE, "seed") and not registry.accepts(BiasBaseline, "seed")
    assert registry.create("torch-bpr", seed=11).seed == 11  # TorchRecommender takes it through **kwargs
    ease = registry.create("ease", seed=11, l2=3.0)  # EASE has no seed: none is passed, none is set
    assert ease.l2 == 3.0 and not hasattr(ease, "seed")
    seeded = set()
    for name in registry.names():  # building with a seed never fails; the seed lands where it is taken
        model = registry.create(name, seed=11, **side_inputs(name, market))
        if registry.accepts(type(model), "seed"):
            seeded.add(name)
            assert model.seed == 11, name
        else:
            assert getattr(model, "seed", None) is None, name
    assert {"als", "bpr", "random", "mf", "multvae", "explicit-mf"} <= seeded
    assert not {"ease", "popularity", "itemknn", "bias-baseline", "global-mean"} & seeded
    with pytest.raises(TypeError):
        registry.create("ease", not_a_knob=1)


def test_knob_names_follow_the_scheme():
    """dim / l2 / lr / epochs, never the old factors / regularization / learning_rate / iterations."""
    old = {"factors", "regularization", "learning_rate", "iterations", "user_reg", "item_reg"}
    for name in registry.names():
        assert not old & set(constructor_parameters(registry.MODELS[name])), name
    assert {"dim", "l2", "alpha", "epochs"} <= set(constructor_parameters(ALS))
    assert {"dim", "lr", "l2", "epochs"} <= set(constructor_parameters(registry.MODELS["bpr"]))
    assert {"user_l2", "item_l2", "epochs"} <= set(constructor_parameters(BiasBaseline))


def test_repr_shows_the_knobs():
    model = ALS(dim=8, l2=0.5, epochs=3, device="cpu")
    text = repr(model)
    assert text.startswith("ALS(dim=8, l2=0.5, alpha=1.0, epochs=3,") and "device" not in text
    assert knobs(model)["l2"] == 0.5
    assert repr(registry.create("ease", l2=7.0)) == "EASE(l2=7.0, binary=True)"
    assert repr(BiasBaseline(user_l2=np.float64(2.0))) == "BiasBaseline(user_l2=2.0, item_l2=5.0, epochs=10)"
    ncf = registry.create("ncf-mlp", dim=8, n_layers=2)
    assert "dim=8, n_layers=2, hidden=(16, 8)" in repr(ncf) and "lr=" in repr(ncf)


def test_tuning_by_name_equals_tuning_by_factory(market):
    train, validation = market["train"], market["validation"]
    space = {"l2": [1.0, 30.0, 300.0]}
    by_name = grid_search("ease", space, train, validation)
    by_factory = grid_search(lambda l2: EASE(l2=l2), space, train, validation)
    pd.testing.assert_frame_equal(by_name.trials.drop(columns="seconds"), by_factory.trials.drop(columns="seconds"))
    assert by_name.trials["value"].nunique() > 1  # the setting matters, so equal tables are a real check
    space = {"dim": ("int", 2, 8), "l2": ("log", 0.01, 10.0)}
    named = random_search("als", space, train, validation, n_trials=3, seed=4, fixed={"epochs": 2, "device": "cpu"})
    factory = random_search(lambda **p: ALS(epochs=2, device="cpu", seed=4, **p), space, train, validation,
                            n_trials=3, seed=4)
    pd.testing.assert_frame_equal(named.trials.drop(columns="seconds"), factory.trials.drop(columns="seconds"))
    assert validation_score("ease", train, validation, params={"l2": 30.0}) == pytest.approx(
        validation_score(EASE(l2=30.0).fit(train), train, validation), abs=1e-12)
    with pytest.raises(ValueError, match="by name"):
        validation_score(EASE().fit(train), train, validation, params={"l2": 1.0})


def test_optuna_search_takes_a_name(market):
    train, validation = market["train"], market["validation"]
    result = optuna_search("ease", lambda trial: {"l2": trial.suggest_float("l2", 1.0, 500.0, log=True)},
                           n_trials=4, seed=0, train=train, validation=validation)
    assert result.n_trials == 4 and set(result.best_params) == {"l2"}
    assert result.best_value == pytest.approx(validation_score("ease", train, validation, params=result.best_params))
    with pytest.raises(ValueError, match="needs train= and validation="):
        optuna_search("ease", lambda trial: {}, n_trials=1)
