"""Master data of the raw company sources: the member-centre table and the item catalogue, with dirt.

Members: QA accounts, scraper accounts, re-synced duplicates, inconsistent gender and city
spellings, missing birth years and genders. Catalogue: zero, negative and ten-times prices,
brand case and spaces, missing category paths, items exported twice. Every defect is recorded
in the truth table (see :mod:`recsys_utils.data.raw_sources`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from recsys_utils.core.vocabulary import CATEGORY, ITEM, PRICE, TITLE, USER
from recsys_utils.data import taxonomy as tx
from recsys_utils.data.raw_truth import TruthBuilder, pick_rows

NICK_WORDS = ("sunny", "panda", "lucky", "tiger", "maple", "river", "cloud", "peach", "jade", "lotus",
              "bamboo", "pearl", "comet", "happy", "little", "silver", "ocean", "misty", "cherry", "swift")
MAIL_DOMAINS = ("qq.com", "163.com", "gmail.com", "outlook.com", "126.com", "foxmail.com")


def members_table(world, rng: np.random.Generator, n_test: int, n_scrapers: int
                  ) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray, np.ndarray]:
    """The member-centre table with its truth rows, and the ids of the QA and the scraper accounts."""
    users = world.users
    n = len(users)
    nick = (np.asarray(NICK_WORDS, dtype=object)[rng.integers(0, len(NICK_WORDS), n)]
            + np.asarray(NICK_WORDS, dtype=object)[rng.integers(0, len(NICK_WORDS), n)]
            + pd.Series(rng.integers(1, 9999, n)).astype(str).to_numpy())
    email = nick + "@" + np.asarray(MAIL_DOMAINS, dtype=object)[rng.integers(0, len(MAIL_DOMAINS), n)]
    ref_year = world.start.year
    real = pd.DataFrame({
        "member_id": users[USER].to_numpy(),
        "nickname": nick,
        "email": email,
        "signup_time": users["signup_time"].to_numpy(),
        "birth_year": pd.array(ref_year - users["age"].to_numpy(), dtype="Int64"),
        "gender": users["gender"].to_numpy().astype(object),
        "city": users["city"].to_numpy().astype(object),
        "member_level": users["member_level"].to_numpy(),
    })
    # inconsistent strings: gender spellings and city variants
    gender_bad = pick_rows(rng, n, 0.04)
    variants = {"F": np.array(["female", "Female", " F", "f", "FEMALE"], dtype=object),
                "M": np.array(["male", "Male", "M ", "m", "MALE"], dtype=object)}
    g = real["gender"].to_numpy().copy()
    pick = rng.integers(0, 5, len(gender_bad))
    g[gender_bad] = np.where(g[gender_bad] == "F", variants["F"][pick], variants["M"][pick])
    city_bad = pick_rows(rng, n, 0.05)
    c = real["city"].to_numpy().copy()
    style = rng.integers(0, 4, len(city_bad))
    base = pd.Series(c[city_bad])
    c[city_bad] = np.select(
        [style == 0, style == 1, style == 2],
        [base.str.lower().to_numpy(), (" " + base + "  ").to_numpy(), (base + " Shi").to_numpy()],
        default=base.str.upper().to_numpy())
    # missing values
    missing_year = pick_rows(rng, n, 0.03)
    missing_gender = np.setdiff1d(pick_rows(rng, n, 0.02), gender_bad)
    year = real["birth_year"].copy()
    year.iloc[missing_year] = pd.NA
    g[missing_gender] = None
    real = real.assign(gender=g, city=c, birth_year=year)

    b = TruthBuilder()
    uid = b.add(real)
    b.fix(uid[gender_bad], "inconsistent")
    b.fix(uid[city_bad], "inconsistent")
    b.fix(uid[missing_year], "missing")
    b.fix(uid[missing_gender], "missing")
    # re-synced duplicates: the same member, exported again later
    dup = pick_rows(rng, n, 0.01)
    copies = real.iloc[dup].copy()
    b.add(copies, "duplicate")
    # QA and scraper accounts, with ids after the real members
    extra_ids = users[USER].max() + 1 + rng.permutation(n_test + n_scrapers)
    test_ids, scraper_ids = extra_ids[:n_test], extra_ids[n_test:]
    prefix = np.where(rng.random(n_test) < 0.5, "qa_", "test_")
    test_nick = pd.Series(prefix).str.cat(pd.Series(np.arange(n_test) + 1).astype(str)).to_numpy()
    signup = world.start - pd.to_timedelta(rng.uniform(1, 300, n_test + n_scrapers), unit="D")
    test = pd.DataFrame({
        "member_id": test_ids, "nickname": test_nick, "email": test_nick + "@test.internal",
        "signup_time": signup[:n_test].round("s"), "birth_year": pd.array([1990] * n_test, dtype="Int64"),
        "gender": "M", "city": "Shanghai", "member_level": "bronze"})
    b.add(test, "test_account")
    sn = nick[rng.integers(0, n, n_scrapers)] + "x"
    scrapers = pd.DataFrame({
        "member_id": scraper_ids, "nickname": sn, "email": sn + "@" + "gmail.com",
        "signup_time": signup[n_test:].round("s"),
        "birth_year": pd.array(rng.integers(1975, 2002, n_scrapers), dtype="Int64"),
        "gender": np.where(rng.random(n_scrapers) < 0.5, "F", "M"),
        "city": np.asarray(tx.CITIES[0], dtype=object)[rng.integers(0, 4, n_scrapers)],
        "member_level": "bronze"})
    b.add(scrapers, "bot")
    frame, truth = b.build("members", ["member_id", "signup_time"])
    frame["birth_year"] = frame["birth_year"].astype("Int64")
    return frame, truth, test_ids, scraper_ids


def catalogue_table(world, rng: np.random.Generator) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The item catalogue export with its truth rows (bad prices, brand spellings, gaps, duplicates)."""
    items = world.items
    n = len(items)
    status = np.where((items["launch_time"] < world.start - pd.Timedelta(days=400))
                      & (rng.random(n) < 0.15), "offline", "active")
    cat = pd.DataFrame({
        ITEM: items[ITEM].to_numpy(),
        TITLE: items[TITLE].to_numpy(),
        "category_path": items[CATEGORY].to_numpy().astype(object),
        "brand": items["brand"].to_numpy().astype(object),
        PRICE: items[PRICE].to_numpy().copy(),
        "launch_date": items["launch_time"].to_numpy(),
        "status": status,
    })
    chosen = rng.permutation(n)
    k = max(1, int(round(0.015 * n)))
    zero, typo = chosen[:k], chosen[k:3 * k]
    brand_bad = chosen[3 * k:3 * k + 2 * k]
    cat_missing = chosen[5 * k:6 * k]
    price = cat[PRICE].to_numpy().copy()
    price[zero] = np.where(rng.random(k) < 0.5, 0.0, -price[zero])
    price[typo] = np.round(price[typo] * 10, 2)
    style = rng.integers(0, 3, len(brand_bad))
    base = pd.Series(cat["brand"].to_numpy()[brand_bad])
    cat.loc[brand_bad, "brand"] = np.select(
        [style == 0, style == 1], [base.str.upper().to_numpy(), base.str.lower().to_numpy()],
        default=(" " + base + " ").to_numpy())
    cat.loc[cat_missing, "category_path"] = None
    cat[PRICE] = price
    b = TruthBuilder()
    uid = b.add(cat)
    b.fix(uid[np.concatenate([zero, typo])], "bad_price")
    b.fix(uid[brand_bad], "inconsistent")
    b.fix(uid[cat_missing], "missing")
    clean_rows = np.setdiff1d(np.arange(n), chosen[:6 * k])
    b.add(cat.iloc[rng.choice(clean_rows, size=max(1, int(round(0.01 * n))), replace=False)], "duplicate")
    frame, truth = b.build("catalogue", [ITEM])
    return frame, truth


__all__ = ["catalogue_table", "members_table"]
