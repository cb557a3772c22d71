"""What ``images/trim-venv.sh`` cuts from the node images, and that nodes still do their work.

The trim (issue P6) takes out of the Spark image the Kubernetes, YARN and Hive
jars, Netty's native jars for other platforms and RocksDB's JNI libraries for
other platforms; out of both images Arrow Flight and pyarrow's duplicate
``libarrow_python*.so`` copies; out of the Dask image Bokeh's TypeScript
compiler, typings and unminified bundles. Each test here runs a script in a
throwaway container of the real node image (no network, labelled, removed
pass or fail) and checks the absence, then that the features users run still
work: DataFrame, SQL, parquet/ORC/CSV/JSON, MLlib, Python and pandas UDFs,
RocksDB, a Dask LocalCluster with its dashboard and a pyarrow parquet round
trip. Spark Connect on a trimmed image is covered by
``test_spark_connect.py`` (a real cluster whose scheduler runs the server).
"""

from __future__ import annotations

import json
import re
import uuid

import pytest

from clusterkit import images, labels

pytestmark = [pytest.mark.docker, pytest.mark.slow]

#: The P6 ceilings, as `docker images` shows sizes (MB = 10**6 bytes).
MAX_MB = {"dask": 450, "spark": 950}

#: Spark in a container with no network: its own host name does not resolve.
LOCAL_SPARK = {"SPARK_LOCAL_IP": "127.0.0.1", "SPARK_LOCAL_HOSTNAME": "localhost"}


def run_python(docker_client, ref: str, script: str, *, timeout: float, env: dict | None = None) -> str:
    """``python -c script`` in a labelled container of ``ref`` with no network; its stdout.

    Waits for the exit at most ``timeout`` seconds; the container is removed either way.
    """
    name = f"ck-trim-{uuid.uuid4().hex[:8]}"
    container = docker_client.containers.create(
        ref,
        ["python", "-c", script],
        name=name,
        network_mode="none",
        environment=env or {},
        labels={labels.PROJECT: labels.PROJECT_VALUE, labels.CLUSTER: name},
    )
    try:
        container.start()
        try:
            code = container.wait(timeout=timeout)["StatusCode"]
        except Exception as e:  # the engine's read timeout: the script did not end in time
            raise AssertionError(f"{name} did not finish within {timeout} s ({e})") from None
        out = container.logs(stdout=True, stderr=False).decode(errors="replace")
        err = container.logs(stdout=False, stderr=True).decode(errors="replace")
        assert code == 0, f"exit {code}\n--- stdout\n{out[-3000:]}\n--- stderr\n{err[-5000:]}"
        return out
    finally:
        container.remove(force=True)


@pytest.fixture(scope="module")
def spark_image(docker_client):
    return images.ensure_image("spark")


@pytest.fixture(scope="module")
def dask_image(docker_client):
    return images.ensure_image("dask")


# What is left in an image, as JSON: run in the node image's venv.
FACTS = r"""
import glob, json, os, sys, zipfile
sp = glob.glob(sys.prefix + "/lib/python3*/site-packages")[0]
jars = sorted(os.path.basename(p) for p in glob.glob(sp + "/pyspark/jars/*.jar"))
rocks = [p for p in glob.glob(sp + "/pyspark/jars/rocksdbjni-*.jar")]
arrow = sp + "/pyarrow/"
js = sp + "/bokeh/server/static/js/"
print(json.dumps({
    "jars": jars,
    "rocksdb_natives": sorted(n for r in rocks for n in zipfile.ZipFile(r).namelist() if n.startswith("librocksdbjni")),
    "flight": sorted(os.path.basename(p) for p in glob.glob(arrow + "*flight*")),
    "arrow_python": {os.path.basename(p): os.path.islink(p) for p in glob.glob(arrow + "libarrow_python.so*")},
    "bokeh_js": sorted(os.listdir(js)) if os.path.isdir(js) else None,
}))
"""


def facts(docker_client, ref: str) -> dict:
    return json.loads(run_python(docker_client, ref, FACTS, timeout=60))


def assert_size(docker_client, ref: str, backend: str) -> None:
    size = docker_client.images.get(ref).attrs["Size"]
    assert size <= MAX_MB[backend] * 10**6, f"{ref} is {size / 1e6:.1f} MB, over {MAX_MB[backend]} MB"


def assert_arrow_trimmed(found: dict) -> None:
    assert found["flight"] == [], "Arrow Flight is not used by any node"
    # One real file, the SONAME the extensions load (libarrow_python.so.<N>); the
    # link-time and full-version names link to it.
    real = [name for name, link in found["arrow_python"].items() if not link]
    assert len(real) == 1 and re.fullmatch(r"libarrow_python\.so\.\d+", real[0]), found["arrow_python"]
    assert len(found["arrow_python"]) == 3, found["arrow_python"]


# --- Spark -------------------------------------------------------------------------------


@pytest.mark.spark
def test_spark_image_has_no_kubernetes_yarn_hive_or_foreign_natives(docker_client, spark_image):
    assert_size(docker_client, spark_image, "spark")
    found = facts(docker_client, spark_image)
    jars = found["jars"]
    gone = (
        "kubernetes-", "spark-kubernetes_", "vertx-", "volcano-", "zjsonpatch-", "spark-yarn_",
        "spark-hive_", "spark-hive-thriftserver_", "derby", "datanucleus-", "jdo-api-", "javax.jdo-",
        "libthrift-", "libfb303-",
    )  # fmt: skip
    assert [j for j in jars if j.startswith(gone)] == []
    assert [j for j in jars if j.startswith("hive-")] == [
        next(j for j in jars if j.startswith("hive-storage-api-"))
    ], "only hive-storage-api stays (ORC needs it)"
    natives = [j for j in jars if j.startswith("netty-") and ".Final-" in j]
    assert natives and all(j.endswith("-linux-x86_64.jar") for j in natives), natives
    assert any(j.startswith("netty-transport-native-epoll-") for j in natives)
    assert any(j.startswith("netty-tcnative-boringssl-static-") for j in natives)
    assert found["rocksdb_natives"] == ["librocksdbjni-linux64.so"]
    # what nodes run is still there
    kept = ("spark-core_", "spark-sql_", "spark-connect_", "spark-mllib_", "orc-core-", "parquet-hadoop-")
    assert all(any(j.startswith(k) for j in jars) for k in kept), kept
    assert_arrow_trimmed(found)


SPARK_SMOKE = r"""
import pandas as pd
from pyspark.ml import Pipeline
from pyspark.ml.classification import LogisticRegression
from pyspark.ml.feature import VectorAssembler
from pyspark.sql import SparkSession, functions as F
from pyspark.sql.types import LongType

spark = (SparkSession.builder.master("local[2]").appName("trim-smoke")
         .config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions", "2").getOrCreate())
assert spark.conf.get("spark.sql.catalogImplementation") == "in-memory"
df = spark.range(400).withColumn("k", F.col("id") % 4)
names = spark.createDataFrame([(i, f"n{i}") for i in range(4)], ["k", "name"])
joined = df.groupBy("k").agg(F.sum("id").alias("s")).join(names, "k")
assert sorted((r["k"], r["name"]) for r in joined.collect()) == [(i, f"n{i}") for i in range(4)]
df.createOrReplaceTempView("t")
assert spark.sql("SELECT count(*) AS c FROM t WHERE k < 2").first()["c"] == 200
print("dataframe sql")
for fmt in ("parquet", "orc", "csv", "json"):
    path = "/tmp/trim-" + fmt
    df.write.mode("overwrite").format(fmt).option("header", "true").save(path)
    back = spark.read.format(fmt).option("header", "true").option("inferSchema", "true").load(path)
    assert back.agg(F.sum("id")).first()[0] == 79800, fmt
    print(fmt)
train = df.withColumn("label", (F.col("k") > 1).cast("double"))
model = Pipeline(stages=[VectorAssembler(inputCols=["k"], outputCol="features"),
                         LogisticRegression(maxIter=10)]).fit(train)
assert model.transform(train).filter("prediction = label").count() >= 360
print("mllib")
plus = F.udf(lambda v: v + 1, LongType())
@F.pandas_udf("long")
def twice(s: pd.Series) -> pd.Series:
    return s * 2
row = df.select(F.sum(plus("id")).alias("a"), F.sum(twice("id")).alias("b")).first()
assert (row["a"], row["b"]) == (80200, 159600)
assert df.toPandas().shape == (400, 2)
print("udf")
jvm = spark._jvm  # RocksDB's JNI library still loads from the trimmed jar
jvm.org.rocksdb.RocksDB.loadLibrary()
db = jvm.org.rocksdb.RocksDB.open("/tmp/trim-rocksdb")
db.put(bytearray(b"k"), bytearray(b"v"))
assert bytes(db.get(bytearray(b"k"))) == b"v"
db.close()
print("rocksdb")
spark.stop()
"""


@pytest.mark.spark
def test_spark_still_computes_reads_writes_learns_and_runs_udfs(docker_client, spark_image):
    out = run_python(docker_client, spark_image, SPARK_SMOKE, timeout=300, env=LOCAL_SPARK)
    assert out.split() == ["dataframe", "sql", "parquet", "orc", "csv", "json", "mllib", "udf", "rocksdb"]


# --- Dask --------------------------------------------------------------------------------


def test_dask_image_has_no_flight_or_bokeh_build_tools(docker_client, dask_image):
    assert_size(docker_client, dask_image, "dask")
    found = facts(docker_client, dask_image)
    assert_arrow_trimmed(found)
    js = found["bokeh_js"]
    assert "compiler.js" not in js and "lib" not in js
    assert [f for f in js if not f.endswith(".min.js")] == []
    assert "bokeh.min.js" in js


DASK_SMOKE = r"""
import re, urllib.parse, urllib.request
import pandas as pd
import pyarrow.fs
import dask.dataframe as dd
from dask.distributed import Client, LocalCluster

if __name__ == "__main__":
    with LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1",
                      dashboard_address="127.0.0.1:0") as cluster, Client(cluster):
        pdf = pd.DataFrame({"id": range(400), "k": [i % 4 for i in range(400)]})
        dd.from_pandas(pdf, npartitions=4).to_parquet("/tmp/trim-pq", engine="pyarrow", write_index=False)
        back = dd.read_parquet("/tmp/trim-pq", engine="pyarrow")
        assert back.groupby("k").id.sum().compute().to_dict() == {0: 19800, 1: 19900, 2: 20000, 3: 20100}
        assert dd.read_parquet("/tmp/trim-pq", filesystem="arrow").id.sum().compute() == 79800
        print("parquet")
        page_url = cluster.dashboard_link.replace("/status", "/individual-task-stream")
        page = urllib.request.urlopen(page_url, timeout=30).read().decode()
        scripts = re.findall(r'src="([^"]*static/js/[^"]*)"', page)
        assert any("bokeh.min.js" in s for s in scripts), scripts
        for s in scripts:
            body = urllib.request.urlopen(urllib.parse.urljoin(page_url, s), timeout=30).read()
            assert len(body) > 1000, s
        print("dashboard")
    assert pyarrow.fs.S3FileSystem  # kept: the arrow filesystems users may read from
    try:
        import pyarrow.flight  # noqa: F401
    except ImportError:
        print("noflight")
"""


def test_dask_still_computes_round_trips_parquet_and_serves_its_dashboard(docker_client, dask_image):
    out = run_python(docker_client, dask_image, DASK_SMOKE, timeout=180)
    assert [line for line in out.split() if line in ("parquet", "dashboard", "noflight")] == [
        "parquet",
        "dashboard",
        "noflight",
    ], out
