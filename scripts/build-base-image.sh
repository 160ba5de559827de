#!/bin/sh
# Build a Python base image from Debian packages, with no container registry,
# and import it into podman (or docker), so the Dockerfile can use it:
#
#     scripts/build-base-image.sh                 # -> localhost/health-adapter-base:bookworm
#     podman build --build-arg BASE_IMAGE=localhost/health-adapter-base:bookworm -t health-adapter .
#
# Usage: scripts/build-base-image.sh [--force] [IMAGE]
#
# It does nothing when IMAGE already exists (--force rebuilds it). Settings, from the
# environment:
#   ENGINE        podman or docker (default: podman if installed, else docker)
#   ENGINE_ARGS   extra global options for the engine, e.g. "--runtime runc"
#   SUITE         the Debian release (default: bookworm, whose python3 is 3.11)
#   MIRROR        an apt mirror URL (default: the host's apt sources)
#   CA_BUNDLE     a PEM bundle installed as the image's trust store, so that pip and
#                 the adapter's https checks trust what this host trusts (default: the
#                 host's /etc/ssl/certs/ca-certificates.crt; empty keeps Debian's)
#
# Needs mmdebstrap (Debian package) and root, or a user set up for unshare mode.
set -eu

force=
if [ "${1:-}" = "--force" ]; then
    force=1
    shift
fi
suite=${SUITE:-bookworm}
image=${1:-localhost/health-adapter-base:$suite}
engine=${ENGINE:-$(command -v podman >/dev/null 2>&1 && echo podman || echo docker)}
ca_bundle=${CA_BUNDLE-/etc/ssl/certs/ca-certificates.crt}

# shellcheck disable=SC2086 # ENGINE_ARGS is a list of options
run_engine() { "$engine" ${ENGINE_ARGS:-} "$@"; }

if [ -z "$force" ] && run_engine image inspect "$image" >/dev/null 2>&1; then
    echo "$image: already there (--force rebuilds it)"
    exit 0
fi

work=$(mktemp -d "${TMPDIR:-/tmp}/health-adapter-base.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM

# merged-usr as a hook rather than the usrmerge package, which would pull in perl.
# shellcheck disable=SC2016 # "$1" is for mmdebstrap to expand: the hook's root directory
set -- --variant=apt --include=python3,python3-venv,ca-certificates \
    --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --dpkgopt='path-exclude=/usr/share/man/*' \
    --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    --customize-hook='rm -rf "$1"/var/cache/* "$1"/var/log/*.log "$1"/var/lib/apt/lists/*'
if [ -n "$ca_bundle" ]; then
    cp "$ca_bundle" "$work/ca-certificates.crt"
    set -- "$@" --customize-hook="copy-in $work/ca-certificates.crt /etc/ssl/certs"
fi
mmdebstrap --quiet "$@" "$suite" "$work/rootfs.tar" ${MIRROR:+"$MIRROR"}

run_engine import \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
    --change 'CMD ["python3"]' \
    "$work/rootfs.tar" "$image" >/dev/null
echo "$image: built from Debian $suite"
