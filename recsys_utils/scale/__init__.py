"""Scaling out: the course's data jobs and ALS on Apache Spark (the ``spark`` extra), checked against the
single-machine versions. Import the submodules (``recsys_utils.scale.spark_als`` ...): this package
imports nothing itself, so ``import recsys_utils`` never needs Spark or Java."""
