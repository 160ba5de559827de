#!/bin/sh
# Build the Python base images the Dockerfile needs from Debian packages, with no
# container registry, and import them into podman (or docker):
#
#     scripts/build-base-image.sh          # -> localhost/health-adapter-base:bookworm
#                                          #    localhost/health-adapter-base:bookworm-slim
#     podman build --format docker \
#         --build-arg BASE_IMAGE=localhost/health-adapter-base:bookworm \
#         --build-arg RUNTIME_IMAGE=localhost/health-adapter-base:bookworm-slim \
#         -t localhost/health-adapter:0.1.0 .
#
# Usage: scripts/build-base-image.sh [--force] [--full] [IMAGE]
#
# IMAGE (default localhost/health-adapter-base:$SUITE) is the build stage's base:
# python3 with its venv module, apt and dpkg (about 123 MB). IMAGE-slim is the
# runtime stage's base: the interpreter, its standard library compiled to bytecode,
# the shared libraries they load (libstdc++ too, for the grpc extra), dash as /bin/sh and a few busybox tools
# (/usr/bin/env among them), nothing else: no apt, dpkg, pip, docs, man pages or
# locales (about 48 MB). --full also builds IMAGE-full: IMAGE-slim plus coreutils
# and the monitoring plugins (monitoring-plugins-basic, in /usr/lib/nagios/plugins)
# for exec checks that run them.
#
# Each image is left alone when it already exists (--force rebuilds it). Settings,
# from the environment:
#   ENGINE        podman or docker (default: podman if installed, else docker)
#   ENGINE_ARGS   extra global options for the engine, e.g. "--runtime runc"
#   SUITE         the Debian release (default: bookworm, whose python3 is 3.11)
#   MIRROR        an apt mirror URL (default: the host's apt sources)
#   CA_BUNDLE     a PEM bundle installed as the build image's trust store, so that
#                 pip and the adapter's https checks trust what this host trusts
#                 (default: the host's /etc/ssl/certs/ca-certificates.crt; empty keeps
#                 Debian's); the runtime stage copies it from the build stage
#
# Needs mmdebstrap (Debian package) and root, or a user set up for unshare mode.
set -eu

force=
full=
while [ $# -gt 0 ]; do
    case $1 in
    --force) force=1 ;;
    --full) full=1 ;;
    -*) echo "usage: $0 [--force] [--full] [IMAGE]" >&2 && exit 2 ;;
    *) break ;;
    esac
    shift
done
suite=${SUITE:-bookworm}
image=${1:-localhost/health-adapter-base:$suite}
engine=${ENGINE:-$(command -v podman >/dev/null 2>&1 && echo podman || echo docker)}
ca_bundle=${CA_BUNDLE-/etc/ssl/certs/ca-certificates.crt}
merged_usr=/usr/share/mmdebstrap/hooks/merged-usr

# shellcheck disable=SC2086 # ENGINE_ARGS is a list of options
run_engine() { "$engine" ${ENGINE_ARGS:-} "$@"; }

work=$(mktemp -d "${TMPDIR:-/tmp}/health-adapter-base.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM

needed() {
    if [ -z "$force" ] && run_engine image inspect "$1" >/dev/null 2>&1; then
        echo "$1: already there (--force rebuilds it)"
        return 1
    fi
}

# The build stage's base: a Debian with python3, python3-venv and apt. merged-usr
# as a hook rather than the usrmerge package, which would pull in perl.
build_image() {
    # shellcheck disable=SC2016 # "$1" is for mmdebstrap to expand: the hook's root directory
    set -- --variant=apt --include=python3,python3-venv,ca-certificates \
        --hook-dir="$merged_usr" \
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
    rm -f "$work/rootfs.tar"
    echo "$image: built from Debian $suite"
}

# The runtime stage's base: the interpreter and what it loads, libstdc++ for the
# grpc extra's wheels, dash and busybox. The packages are only extracted (mmdebstrap's extract
# variant, which runs extract hooks only): no maintainer script runs, so neither
# dpkg nor the tools those scripts need come along. The hook does the little they
# would have done (the python3 link, the bytecode, the trust store's place) and
# removes what the adapter never runs.
runtime_image() { # NAME EXTRA_PACKAGES
    cat >"$work/runtime-hook.sh" <<'EOF'
set -eu
root=$1
ln -sf python3.11 "$root/usr/bin/python3"
# Where OpenSSL looks for the system's trust store (the openssl package, not here,
# makes these links); the Dockerfile copies the bundle in from the build stage.
mkdir -p "$root/usr/lib/ssl" "$root/etc/ssl/certs"
ln -sfn /etc/ssl/certs "$root/usr/lib/ssl/certs"
ln -sf /etc/ssl/certs/ca-certificates.crt "$root/usr/lib/ssl/cert.pem"
# A few tools for `exec` checks with `shell: true` and for a look around; not
# wget or nc, which the same busybox has: the image carries no network client.
for tool in env cat cut date grep head id ls ps sleep sort stat tail tr uname wc; do
    [ -e "$root/usr/bin/$tool" ] || ln -s busybox "$root/usr/bin/$tool"
done
# dpkg came along as a dependency; nothing runs it (its database is empty here).
rm -rf "$root"/usr/bin/dpkg* "$root"/usr/sbin/dpkg* "$root"/usr/sbin/start-stop-daemon \
    "$root"/usr/libexec/dpkg "$root"/usr/share/dpkg "$root"/etc/dpkg "$root"/usr/bin/tar \
    "$root"/usr/sbin/rmt-tar "$root"/usr/sbin/tarcat "$root"/usr/bin/update-alternatives
# glibc's iconv modules (8 MB): Python has its own codecs and never loads them.
rm -rf "$root"/usr/lib/*/gconv
# Python's own test helpers in lib-dynload.
rm -f "$root"/usr/lib/python3.11/lib-dynload/_test*.so "$root"/usr/lib/python3.11/lib-dynload/_xxtestfuzz*.so
rm -rf "$root"/usr/share/doc "$root"/usr/share/man "$root"/usr/share/info \
    "$root"/usr/share/locale "$root"/usr/share/lintian "$root"/usr/share/bug \
    "$root"/var/cache/* "$root"/var/log/* "$root"/var/lib/apt
# Bytecode for the standard library, as python3.11's postinst would compile it:
# the root filesystem is read-only at run time, so nothing could be cached later.
chroot "$root" /usr/bin/python3.11 -m compileall -q /usr/lib/python3.11 >/dev/null
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n' \
    >"$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
EOF
    # shellcheck disable=SC2016 # "$1" is for mmdebstrap to expand: the hook's root directory
    mmdebstrap --quiet --variant=extract \
        --include="python3.11-minimal,libpython3.11-stdlib,libstdc++6,dash,busybox$2" \
        --setup-hook="$merged_usr/setup00.sh" \
        --dpkgopt='path-exclude=/usr/share/doc/*' \
        --dpkgopt='path-exclude=/usr/share/man/*' \
        --dpkgopt='path-exclude=/usr/share/info/*' \
        --dpkgopt='path-exclude=/usr/share/locale/*' \
        --extract-hook="sh $work/runtime-hook.sh \"\$1\"" \
        "$suite" "$work/rootfs.tar" ${MIRROR:+"$MIRROR"}
    run_engine import \
        --change 'ENV LANG=C.UTF-8' \
        --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
        --change 'CMD ["python3"]' \
        "$work/rootfs.tar" "$1" >/dev/null
    rm -f "$work/rootfs.tar"
    echo "$1: built from Debian $suite"
}

if needed "$image"; then build_image; fi
if needed "$image-slim"; then runtime_image "$image-slim" ""; fi
if [ -n "$full" ] && needed "$image-full"; then
    runtime_image "$image-full" ",coreutils,monitoring-plugins-basic"
fi
