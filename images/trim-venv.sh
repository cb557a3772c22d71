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
