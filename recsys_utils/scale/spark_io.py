"""pandas -> Spark hand-off through a CSV file, the way a real job reads its input from storage.

``spark.createDataFrame(pandas_frame)`` without Arrow pickles every row through the driver (seconds
for 10^5 rows); writing the frame once and letting Spark read it in parallel is ~5x faster and keeps
values exact: floats are written with their shortest round-trip representation, timestamps as
integer microseconds (converted back with ``timestamp_micros``), missing values as empty fields
(read back as null). Empty strings therefore come back as null.
"""

from __future__ import annotations

import uuid

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from recsys_utils.scale.spark_session import workdir


def _spark_type(series: pd.Series) -> str:
    dtype = series.dtype
    if pd.api.types.is_bool_dtype(dtype):
        return "boolean"
    if pd.api.types.is_integer_dtype(dtype):
        return "bigint"
    if pd.api.types.is_float_dtype(dtype):
        return "double"
    if pd.api.types.is_datetime64_any_dtype(dtype):
        return "timestamp"
    return "string"


def to_spark(spark: SparkSession, frame: pd.DataFrame) -> DataFrame:
    """``frame`` as a Spark DataFrame with the same column names and exact values (index dropped)."""
    if not isinstance(frame, pd.DataFrame):
        raise TypeError(f"to_spark: expected a pandas DataFrame, got {type(frame).__name__}")
    if frame.columns.duplicated().any() or not all(isinstance(c, str) for c in frame.columns):
        raise ValueError(f"to_spark: column names must be unique strings, got {list(frame.columns)}")
    types = {column: _spark_type(frame[column]) for column in frame.columns}
    out = pd.DataFrame(index=frame.index)
    for column, kind in types.items():
        values = frame[column]
        if kind == "timestamp":
            micros = pd.to_datetime(values).dt.tz_localize(None).astype("datetime64[us]")
            out[column] = pd.Series(micros.to_numpy().astype(np.int64), index=frame.index).where(values.notna())
            out[column] = out[column].astype("Int64")
        elif kind == "double":
            out[column] = values.astype(np.float64)
        elif kind == "boolean":
            out[column] = values.astype(object).map({True: "true", False: "false"})
        else:
            out[column] = values
    staging = workdir(spark) / "staging"
    staging.mkdir(parents=True, exist_ok=True)
    path = staging / f"{uuid.uuid4().hex}.csv"
    out.to_csv(path, index=False, na_rep="", float_format=None)
    read_types = {c: ("bigint" if k == "timestamp" else k) for c, k in types.items()}
    schema = ", ".join(f"`{c}` {k}" for c, k in read_types.items())
    spark_frame = spark.read.csv(str(path), header=True, schema=schema, escape='"', nanValue="NaN",
                                 mode="FAILFAST")
    for column, kind in types.items():
        if kind == "timestamp":
            spark_frame = spark_frame.withColumn(column, F.timestamp_micros(F.col(column)))
    return spark_frame


__all__ = ["to_spark"]
