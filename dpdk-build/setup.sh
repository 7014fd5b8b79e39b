#!/usr/bin/env bash
# Readies a Debian 12 machine for building and testing rvs. Idempotent: a
# second run changes nothing and takes a moment.
#
#  - installs the packages the build and the tests need (DPDK 22.11 LTS from
#    Debian, clang for bindgen, and the tools the lab uses), and cargo-fuzz;
#  - reserves 2 MiB hugepages and mounts hugetlbfs when the machine allows.
#    When it does not, rvsd says so and runs with --no-huge.
set -euo pipefail

# --kernel-vm: also what `cargo xtask kernel-vm` needs to build and boot the
# Debian VM with real kernel IPVS (the oracle).
kernel_vm=false
[ "${1:-}" = "--kernel-vm" ] && kernel_vm=true

RVS_HUGEPAGES=${RVS_HUGEPAGES:-512}   # 2 MiB pages: 1 GiB

packages=(
    libdpdk-dev dpdk dpdk-dev pkg-config   # DPDK and how to find it
    dpkg-dev debootstrap systemd groff-base # the .deb: cargo-deb's shlibdeps, its install test, man pages
    clang libclang-dev                     # bindgen
    iproute2 ethtool procps                # the lab: netns, veth, bridge, sysctl
    curl socat python3 iputils-ping        # the lab's clients and servers
    hping3                                 # the lab's spoofed SYN flood
    keepalived bird2                       # the lab: VRRP beside rvs-keepalived, BGP over the exception path
    chromium                               # the status page's test (headless)
)
if $kernel_vm; then
    packages+=(qemu-system-x86 debootstrap busybox-static cpio e2fsprogs)
fi

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ]; then
        echo "setup: missing packages (${missing[*]}); run this script as root" >&2
        exit 1
    fi
    echo "setup: installing ${missing[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# cargo-fuzz, for the fuzz targets (`cargo xtask fuzz`, docs/fuzzing.md):
# built from crates.io with the locked dependencies (a few minutes, once).
if ! command -v cargo >/dev/null; then
    echo "setup: cargo is not on PATH: cargo-fuzz not installed (cargo xtask fuzz needs it)" >&2
elif ! cargo fuzz --version >/dev/null 2>&1; then
    echo "setup: installing cargo-fuzz (cargo install cargo-fuzz --locked)"
    cargo install cargo-fuzz --locked --quiet
fi

hp=/sys/kernel/mm/hugepages/hugepages-2048kB/nr_hugepages
if [ "$(id -u)" -eq 0 ] && [ -w "$hp" ]; then
    if [ "$(cat "$hp")" -lt "$RVS_HUGEPAGES" ]; then
        echo "$RVS_HUGEPAGES" > "$hp" 2>/dev/null || true
    fi
    mkdir -p /dev/hugepages
    if ! grep -qs ' /dev/hugepages hugetlbfs ' /proc/mounts; then
        mount -t hugetlbfs nodev /dev/hugepages 2>/dev/null || true
    fi
fi
free=$(awk '/HugePages_Free/ {print $2}' /proc/meminfo)
if [ "${free:-0}" -gt 0 ] && grep -qs ' hugetlbfs ' /proc/mounts; then
    echo "setup: ok (DPDK $(pkg-config --modversion libdpdk), ${free} free 2 MiB hugepages)"
else
    echo "setup: ok (DPDK $(pkg-config --modversion libdpdk), no hugepages: rvsd will run with --no-huge)"
fi
