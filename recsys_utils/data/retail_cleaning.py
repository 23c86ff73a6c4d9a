"""Cleaning UCI Online Retail with the same audited machinery as the marketplace.

Online Retail (Chen, Sain & Guo 2012) is one raw table of invoice lines: ``InvoiceNo, StockCode,
Description, Quantity, InvoiceDate, UnitPrice, CustomerID, Country``. There is no truth table,
but there are known facts: invoices whose number starts with ``C`` are cancellations (returns,
with negative quantities); about a quarter of the lines have no ``CustomerID`` and cannot be
used for personalisation; some stock codes are not products (postage ``POST``/``DOT``, manual
entries ``M``, discounts ``D``, ``BANK CHARGES``, ``AMAZONFEE``, samples); some lines have
non-positive prices or quantities (stock adjustments); and some lines are exact duplicates.

:func:`clean_online_retail` drops rows by the first rule they break, in this order:
``missing_customer``, ``cancellation``, ``not_a_product``, ``bad_quantity``, ``bad_price``,
``duplicate``; it fixes stray whitespace in descriptions and lower-case stock codes
(``inconsistent``). The audit balances exactly (asserted). :func:`retail_facts` counts each
condition on the raw table independently of the rule order. Turning the cleaned lines into the
course's interactions table is the loader's job (:func:`recsys_utils.data.online_retail.online_retail_dataset`,
which calls :func:`clean_online_retail`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from recsys_utils.data.cleaning_audit import (
    AuditTrail,
    CleaningResult,
    audit_table,
    check_not_all_dropped,
    validate_table,
)
from recsys_utils.data.cleaning_rules import exact_duplicates

SOURCE = "online_retail"
RETAIL_SCHEMA = {"InvoiceNo": "string", "StockCode": "string", "Description": "string",
                 "Quantity": "integer", "InvoiceDate": "datetime", "UnitPrice": "numeric",
                 "CustomerID": "numeric", "Country": "string"}
#: a product's stock code starts with five digits (85123A, 22423); everything else is a service line
PRODUCT_CODE = r"^\d{5}"


@dataclass
class RetailCleaningResult(CleaningResult):
    """:class:`CleaningResult` of one source; ``frame`` is the cleaned table (raw columns)."""

    @property
    def frame(self) -> pd.DataFrame:
        return self.tables[SOURCE]


def is_cancellation(invoice: pd.Series) -> np.ndarray:
    """Invoice numbers starting with ``C`` (case-insensitive, after stripping)."""
    return invoice.astype("string").str.strip().str.upper().str.startswith("C").fillna(False).to_numpy(bool)


def is_product(stock_code: pd.Series, pattern: str = PRODUCT_CODE) -> np.ndarray:
    """Stock codes of products (five leading digits) rather than postage, fees or manual lines."""
    return stock_code.astype("string").str.strip().str.match(pattern).fillna(False).to_numpy(bool)


def retail_facts(raw: pd.DataFrame) -> dict[str, int | bool]:
    """Known facts of the raw table, each counted on its own (not in rule order)."""
    validate_table(raw, RETAIL_SCHEMA, SOURCE)
    cancel = is_cancellation(raw["InvoiceNo"])
    quantity = raw["Quantity"].to_numpy()
    return {
        "rows": len(raw),
        "cancellation_rows": int(cancel.sum()),
        "cancellation_invoices": int(raw.loc[cancel, "InvoiceNo"].nunique()),
        "cancellations_all_negative_quantity": bool((quantity[cancel] < 0).all()),
        "negative_quantity_not_cancellation": int(((quantity < 0) & ~cancel).sum()),
        "missing_customer_rows": int(raw["CustomerID"].isna().sum()),
        "not_a_product_rows": int((~is_product(raw["StockCode"])).sum()),
        "non_positive_price_rows": int((raw["UnitPrice"] <= 0).sum()),
        "exact_duplicate_rows": int(raw.duplicated(keep="first").sum()),
    }


def clean_online_retail(raw: pd.DataFrame, allow_empty: bool = False) -> RetailCleaningResult:
    """Clean raw Online Retail lines into purchases of known customers, with a balanced audit.

    Bad input raises: not a DataFrame, missing columns, wrong dtypes (``InvoiceDate`` must be a
    datetime, ``Quantity`` an integer ...), an empty table; if every row is dropped a
    :class:`~recsys_utils.data.cleaning_audit.CleaningError` says why (unless ``allow_empty``).
    """
    validate_table(raw, RETAIL_SCHEMA, SOURCE)
    trail = AuditTrail(SOURCE, raw.index)
    cancel = is_cancellation(raw["InvoiceNo"])
    trail.drop(raw["CustomerID"].isna().to_numpy(), "missing_customer")
    trail.drop(cancel, "cancellation")
    trail.drop(~is_product(raw["StockCode"]), "not_a_product")
    trail.drop(~(raw["Quantity"] > 0).fillna(False).to_numpy(bool), "bad_quantity")
    # a missing price is a bad price: ``NaN <= 0`` is False, so test for a positive price instead
    trail.drop(~(raw["UnitPrice"] > 0).fillna(False).to_numpy(bool), "bad_price")
    trail.drop(exact_duplicates(raw), "duplicate")

    out = raw.copy()
    text = out["Description"].astype("string")
    description = text.str.strip().str.replace(r"\s+", " ", regex=True)
    changed = (description != text).fillna(False).to_numpy(bool)
    out["Description"] = description
    trail.fix(changed, "inconsistent")
    code = out["StockCode"].astype("string").str.strip().str.upper()
    trail.fix((code != out["StockCode"].astype("string")).fillna(False).to_numpy(bool), "inconsistent")
    out["StockCode"] = code

    audit = audit_table([trail])
    if not allow_empty:
        check_not_all_dropped([trail], audit)
    kept = out.loc[trail.kept].reset_index(drop=True)
    if len(kept):
        kept["CustomerID"] = kept["CustomerID"].astype(np.int64)
    return RetailCleaningResult({SOURCE: kept}, audit, trail.dropped_rows(), trail.fixed_rows(),
                                {"facts": retail_facts(raw)})


__all__ = ["RETAIL_SCHEMA", "RetailCleaningResult", "clean_online_retail", "is_cancellation", "is_product",
           "retail_facts"]
