#!/bin/sh
# Build a clusterkit base image from nothing: mmdebstrap a Debian bookworm
# minbase root file system and `docker import` it. No registry is needed;
# only Debian's package archive (through apt's default mirror, or the
# sources given in $CLUSTERKIT_APT_SOURCES, a path to a .sources/.list file).
#
# usage: build-base.sh IMAGE_REF PACKAGE_FILE...
# Needs root (or a working unshare mode) for mmdebstrap, and docker.
set -eu

ref=$1; shift
[ $# -ge 1 ] || { echo "usage: $0 IMAGE_REF PACKAGE_FILE..." >&2; exit 2; }
command -v mmdebstrap >/dev/null || {
    echo "mmdebstrap not found: apt-get install mmdebstrap (or set BASE_IMAGE to a debian:bookworm-slim-like image)" >&2
    exit 3; }

pkgs=$(cat "$@" | sed 's/#.*//' | tr -s ' \t\n' ',' | sed 's/^,//; s/,$//')
work=$(mktemp -d "${TMPDIR:-/tmp}/clusterkit-base.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM

set --
# Set up the merged /usr with mmdebstrap's hook: without it apt pulls in
# usrmerge and so the whole of perl (~50 MB) into the image.
hooks=/usr/share/mmdebstrap/hooks/merged-usr
if [ -d "$hooks" ]; then set -- --hook-dir="$hooks"; fi
rootfs_args="$*"
set --
if [ -n "${CLUSTERKIT_APT_SOURCES:-}" ]; then set -- "$CLUSTERKIT_APT_SOURCES"; fi

# Docs, man pages, locales and info are never read in a node; leave them out
# at unpack time (copyrights stay). Recommends are not installed.
# openjdk's postinst registers man-page alternatives, so man1 must exist.
# shellcheck disable=SC2086
mmdebstrap --variant=minbase $rootfs_args \
    --essential-hook='mkdir -p "$1"/usr/share/man/man1' \
    --include="$pkgs" \
    --aptopt='APT::Install-Recommends "false"' \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-include=/usr/share/locale/locale.alias' \
    --dpkgopt='path-exclude=/usr/share/lintian/*' \
    --dpkgopt='path-exclude=/usr/share/linda/*' \
    --customize-hook='rm -rf "$1"/usr/share/man/* "$1"/var/cache/apt/* "$1"/var/lib/apt/lists/* "$1"/var/log/*.log "$1"/usr/lib/python3*/__pycache__/*.opt-*.pyc' \
    bookworm "$work/rootfs.tar" "$@"

docker import \
    --change 'LABEL clusterkit.project=clusterkit' \
    --change "LABEL clusterkit.base-packages=$pkgs" \
    --change 'ENV LANG=C.UTF-8' \
    --change 'CMD ["/bin/bash"]' \
    "$work/rootfs.tar" "$ref" >/dev/null
echo "$ref"
