#!/usr/bin/env bash
# Makes the local base image that docker/Dockerfile starts FROM. There is no
# registry to pull `debian:bookworm` from, so the image is built from
# Debian's mirror with debootstrap (minbase) and imported.
#
#   bash docker/base.sh            # makes rvs/debian:bookworm unless it exists
#   REBUILD=1 bash docker/base.sh  # makes it again (e.g. for newer packages)
#
# Environment: BASE_IMAGE (name, default rvs/debian:bookworm), DEBIAN_MIRROR
# (default http://deb.debian.org/debian), DOCKER (the docker CLI to use).
set -euo pipefail

image=${BASE_IMAGE:-rvs/debian:bookworm}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
docker=${DOCKER:-docker}

if [ "${REBUILD:-0}" != 1 ] && $docker image inspect "$image" >/dev/null 2>&1; then
    echo "base: $image exists (REBUILD=1 makes it again)"
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "base: debootstrap needs root" >&2
    exit 1
fi
if ! command -v debootstrap >/dev/null; then
    echo "base: installing debootstrap"
    install() {
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -o DPkg::Lock::Timeout=600 \
            --no-install-recommends debootstrap >/dev/null
    }
    install || { apt-get update -qq && install; }
fi

work=$(mktemp -d /tmp/rvs-base.XXXXXX)
trap 'rm -rf "$work"' EXIT
root=$work/root

echo "base: debootstrap --variant=minbase bookworm ($mirror)"
debootstrap --variant=minbase bookworm "$root" "$mirror" >"$work/debootstrap.log" 2>&1 || {
    tail -20 "$work/debootstrap.log" >&2
    exit 1
}

# What Debian's own container images do: point release, updates and
# security sources; no documentation, manual pages or translations from
# later installs; no apt caches in layers.
cat >"$root/etc/apt/sources.list" <<SOURCES
deb $mirror bookworm main
deb $mirror bookworm-updates main
deb http://deb.debian.org/debian-security bookworm-security main
SOURCES
cat >"$root/etc/dpkg/dpkg.cfg.d/excludes" <<'EXCLUDES'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EXCLUDES
cat >"$root/etc/apt/apt.conf.d/docker-clean" <<'APTCLEAN'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
APTCLEAN
echo 'APT::Install-Recommends "false";' >"$root/etc/apt/apt.conf.d/no-recommends"
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* \
    "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/info/* \
    "$root"/usr/share/locale/* "$root"/var/log/*.log
# Inside a container nothing should start services during apt installs.
printf '#!/bin/sh\nexit 101\n' >"$root/usr/sbin/policy-rc.d"
chmod 755 "$root/usr/sbin/policy-rc.d"

tar --numeric-owner -C "$root" -c . |
    $docker import -c 'CMD ["bash"]' -m "debootstrap --variant=minbase bookworm" - "$image" >/dev/null
echo "base: made $image ($($docker image inspect -f '{{.Size}}' "$image" | awk '{printf "%.0f MB", $1/1e6}'))"
