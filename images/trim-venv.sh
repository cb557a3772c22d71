#!/bin/sh
# Trim a node venv of what a node never runs: test suites, C/C++ headers
# and Cython sources of installed packages. Runtime modules stay.
# usage: trim-venv.sh /opt/venv
set -eu
sp=$(echo "$1"/lib/python3*/site-packages)
cd "$sp"
# Test suites inside packages (numpy/_core/tests, pandas/tests, pyarrow/tests,
# pyspark/**/tests, distributed/tests, ...). `testing` helpers are kept.
find . -depth -type d \( -name tests -o -name test \) \
    ! -path './pip/*' ! -path './setuptools/*' \
    -exec rm -rf {} +
# Headers and build-only sources (used to compile against, never imported).
rm -rf pyarrow/include pyarrow/src numpy/_core/include numpy/f2py/src
find . \( -name '*.pyx' -o -name '*.pxd' -o -name '*.pxi' -o -name '*.h' -o -name '*.hpp' \) -delete
# Examples and docs shipped inside packages.
rm -rf pyspark/examples pyspark/data pyspark/licenses
# Spark Connect's Scala REPL (bin/spark-connect-shell, ~58 MB of ammonite
# jars): an interactive client, never used by a master, worker or driver.
rm -rf pyspark/jars/connect-repl pyspark/bin/spark-connect-shell

# --- P6: what no node runs, in the Spark and Dask images ---------------------
# Every cut below keeps the features users run (DataFrame, SQL, MLlib,
# parquet/ORC/CSV/JSON, Python UDFs, Spark Connect; Dask with pandas and
# pyarrow): tests/integration/test_image_trim.py checks both the absence and
# that those still work. The notebook layer runs this script again on its
# venv, so each step is a no-op when there is nothing left to cut.
jars=pyspark/jars
if [ -d "$jars" ]; then
    # Kubernetes (spark-kubernetes, its fabric8 and vertx clients, volcano) and
    # YARN: a node is a standalone master or worker, never on either.
    rm -f "$jars"/spark-kubernetes_*.jar "$jars"/kubernetes-*.jar "$jars"/vertx-*.jar \
        "$jars"/volcano-*.jar "$jars"/zjsonpatch-*.jar "$jars"/spark-yarn_*.jar \
        pyspark/bin/docker-image-tool.sh
    # Hive: metastore, thrift server, beeline and their Derby/DataNucleus/JDO/
    # thrift stacks. Sessions never call enableHiveSupport(), so the catalog is
    # in-memory and Spark SQL never loads them. hive-storage-api stays: the
    # native ORC reader and writer (orc-core) need it.
    for f in "$jars"/hive-*.jar; do
        case "$f" in */hive-storage-api-*) ;; *) rm -f "$f" ;; esac
    done
    rm -f "$jars"/spark-hive_*.jar "$jars"/spark-hive-thriftserver_*.jar \
        "$jars"/derby*.jar "$jars"/datanucleus-*.jar "$jars"/jdo-api-*.jar \
        "$jars"/javax.jdo-*.jar "$jars"/libthrift-*.jar "$jars"/libfb303-*.jar \
        pyspark/bin/beeline pyspark/bin/beeline.cmd
    # Netty's native transports and boringssl for other platforms: nodes are
    # linux-x86_64, whose jars stay.
    for f in "$jars"/netty-*.Final-*.jar; do
        case "$f" in
            *.Final-linux-x86_64.jar) ;;
            *.Final-linux-*.jar | *.Final-osx-*.jar | *.Final-windows-*.jar) rm -f "$f" ;;
        esac
    done
    # RocksDB (state store, UI and shuffle-service stores, when configured)
    # ships its JNI library for 14 platforms in one jar: keep the glibc
    # linux-x86_64 one, which its loader picks on a node, and the classes.
    # Rewritten with the venv's Python (the image has no zip tool).
    for f in "$jars"/rocksdbjni-*.jar; do
        [ -f "$f" ] || continue
        "$1/bin/python" - "$f" <<'PY'
import os, sys, zipfile
jar = sys.argv[1]
keep = "librocksdbjni-linux64.so"
with zipfile.ZipFile(jar) as z:
    entries = z.infolist()
    drop = [e for e in entries if e.filename.startswith("librocksdbjni-") and e.filename != keep]
    if drop:
        if keep not in z.namelist():
            sys.exit(f"{jar} has no {keep}: not trimming it")
        with zipfile.ZipFile(jar + ".tmp", "w") as out:
            for e in entries:
                if e not in drop:
                    out.writestr(e, z.read(e))
if drop:
    os.chmod(jar + ".tmp", os.stat(jar).st_mode)
    os.replace(jar + ".tmp", jar)
PY
    done
fi
# Arrow Flight (an RPC framework): neither distributed, dask, pandas nor
# pyspark imports pyarrow.flight; `import pyarrow` does not load it.
rm -f pyarrow/libarrow_flight.so* pyarrow/libarrow_python_flight.so* \
    pyarrow/_flight.cpython-*.so pyarrow/flight.py pyarrow/__pycache__/flight.*.pyc
# pyarrow's wheel holds libarrow_python*.so three times (SONAME, full version,
# link-time name): keep the SONAME file the extensions load, link the others.
for so in pyarrow/lib*.so.[0-9]*; do
    case "$so" in *.so.*.*) continue ;; esac
    for dup in "${so%.so.*}.so" "$so".*; do
        if [ -f "$dup" ] && [ ! -L "$dup" ] && cmp -s "$so" "$dup"; then
            ln -sf "${so##*/}" "$dup"
        fi
    done
done
# Bokeh (the Dask dashboard): its TypeScript compiler and typings build custom
# extensions with Node.js, which no image has; the unminified bundles are
# served only in BOKEH_MINIFIED=no / dev mode. The .min.js bundles stay.
js=bokeh/server/static/js
if [ -d "$js" ]; then
    rm -rf "$js/compiler.js" "$js/lib"
    for f in "$js"/*.js; do
        case "$f" in
            *.min.js) ;;
            *) if [ -f "${f%.js}.min.js" ]; then rm -f "$f"; fi ;;
        esac
    done
fi
