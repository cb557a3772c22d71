#!/bin/sh
# The venv of a clusterkit node image, installed in a container of the base
# image and committed as clusterkit/<backend>-env:<tag> (clusterkit.images.build).
# Runs as root with no network; /tmp/build holds this script, trim-venv.sh and
# requirements.txt (the backend lock, with hashes), and /tmp/wheels is the
# host's wheelhouse, mounted read-only. Neither stays in the image (bind mounts,
# not volumes: the image declares no VOLUME, so node containers leave none behind).
# usage: sh /tmp/build/install-venv.sh
set -eu
b=/tmp/build
/usr/bin/python3 -c 'import sys; v = "%d.%d" % sys.version_info[:2]; assert v == "3.11", "the base image must have Python 3.11, it has " + v'
/usr/bin/python3 -m venv /opt/venv
/opt/venv/bin/pip install --no-cache-dir --disable-pip-version-check --no-index \
    --require-hashes --find-links /tmp/wheels -r "$b/requirements.txt"
/opt/venv/bin/pip uninstall --yes --quiet setuptools
/opt/venv/bin/pip check
sh "$b/trim-venv.sh" /opt/venv
echo /opt/clusterkit > /opt/venv/lib/python3.11/site-packages/clusterkit.pth
printf '#!/opt/venv/bin/python\nimport runpy\nrunpy.run_module("clusterkit", run_name="__main__", alter_sys=True)\n' \
    > /opt/venv/bin/clusterkit
chmod 755 /opt/venv/bin/clusterkit
useradd --uid 1000 --user-group --create-home --shell /bin/bash clusterkit
# What the install left outside the venv (pip's state, Python's caches of the base).
rm -rf /root/.cache /tmp/pip-* 2>/dev/null || true
