#!/usr/bin/env bash
# Builds the kernel-oracle VM image from Debian's packages:
#   OUT/vmlinuz, OUT/initrd.gz  the Debian 12 kernel and a busybox initramfs
#                               that mounts the root disk and switches to it;
#   OUT/root.ext4               a debootstrap'ed bookworm root with Debian's
#                               ipvsadm, keepalived, the lab's tools and the
#                               DPDK runtime libraries rvsd links against.
# Usage: image.sh OUT_DIR. `cargo xtask kernel-vm build` calls it (and caches
# OUT_DIR by a hash of this folder); it needs root, debootstrap and
# busybox-static (dpdk-build/setup.sh --kernel-vm installs them).
set -euo pipefail
export PATH=$PATH:/usr/sbin:/sbin
out=$1
here=$(cd "$(dirname "$0")" && pwd)
mirror=${RVS_DEBIAN_MIRROR:-http://deb.debian.org/debian}

# What the guest runs: kernel IPVS and its tools, the lab's clients and
# servers, the packet tools of the scenarios, and rvsd's DPDK libraries
# (only the PMDs rvs uses; the EAL loads every PMD installed).
packages=(
    ipvsadm keepalived kmod iproute2 ethtool procps iputils-ping netbase
    curl socat python3 openssl
    librte-eal23 librte-ethdev23 librte-mbuf23 librte-mempool23
    librte-mempool-ring23 librte-ring23 librte-bus-vdev23
    librte-net-af-packet23 librte-net-tap23 librte-net-ring23
    librte-net-null23 librte-ip-frag23
)

work=$(mktemp -d "${out%/}.work.XXXXXX")
cleanup() { rm -rf "$work"; }
trap cleanup EXIT
root=$work/root
mkdir -p "$out"

echo "kernel-vm: debootstrap bookworm (${#packages[@]} packages)"
debootstrap --variant=minbase --include="$(IFS=,; echo "${packages[*]}")" \
    bookworm "$root" "$mirror" > "$work/debootstrap.log" 2>&1 ||
    { tail -20 "$work/debootstrap.log" >&2; exit 1; }

# The newest 6.1 kernel package, unpacked beside the root (unpacking into it
# would replace the /lib -> usr/lib symlink).
kpkg=$(apt-cache depends linux-image-amd64 | awk '/Depends: linux-image-/ {print $2; exit}')
kver=${kpkg#linux-image-}
echo "kernel-vm: kernel $kver"
(cd "$work" && apt-get download "$kpkg" > /dev/null 2>&1)
dpkg -x "$work"/linux-image-*.deb "$work/kernel"
cp "$work/kernel/boot/vmlinuz-$kver" "$out/vmlinuz"
# Modules a network test can need; sound, GPUs, storage HBAs and the like
# stay out (they triple the image).
mods=$root/usr/lib/modules/$kver
mkdir -p "$mods/kernel/drivers"
for d in net fs lib crypto arch; do
    cp -a "$work/kernel/lib/modules/$kver/kernel/$d" "$mods/kernel/"
done
for d in net block virtio char; do
    cp -a "$work/kernel/lib/modules/$kver/kernel/drivers/$d" "$mods/kernel/drivers/"
done
rm -rf "$mods/kernel/drivers/net/wireless" "$mods/kernel/drivers/net/ethernet"
cp "$work/kernel/lib/modules/$kver"/modules.{order,builtin,builtin.modinfo} "$mods/"
chroot "$root" depmod "$kver"

# The guest's own init (PID 1 after switch_root) and what it needs.
install -m 0755 "$here/guest-init" "$root/sbin/rvs-guest-init"
echo rvs-oracle > "$root/etc/hostname"
rm -rf "$root/var/cache/apt/archives"/*.deb "$root/var/lib/apt/lists"/*

# initramfs: static busybox, the modules that reach the root disk, in
# dependency order, and an init that mounts it.
ird=$work/initramfs
mkdir -p "$ird"/{bin,dev,proc,sys,newroot,modules}
cp /bin/busybox "$ird/bin/busybox"
for app in sh mount insmod switch_root mkdir sleep echo cat; do
    ln -s busybox "$ird/bin/$app"
done
# (ext4 asks the crypto API for crc32c at mount time, which has no modprobe
# to call in here: load it first.)
for m in crc32c_generic virtio_pci virtio_blk ext4; do
    chroot "$root" modprobe -S "$kver" --show-depends "$m"
done | awk '$1 == "insmod" {print $2}' | awk '!seen[$0]++' > "$work/initrd-modules"
while read -r m; do
    cp "$root$m" "$ird/modules/"
    echo "/modules/$(basename "$m")" >> "$ird/modules/order"
done < "$work/initrd-modules"
install -m 0755 "$here/initramfs-init" "$ird/init"
(cd "$ird" && find . | cpio -o -H newc --quiet | gzip -1) > "$out/initrd.gz"

# The root disk. The VM opens it with snapshot=on, so runs never change it.
size_mb=$(( $(du -sm "$root" | cut -f1) * 13 / 10 + 256 ))
rm -f "$out/root.ext4"
mkfs.ext4 -q -L rvs-oracle -d "$root" "$out/root.ext4" "${size_mb}M"
echo "$kver" > "$out/kernel-version"
echo "kernel-vm: image ready in $out ($(du -sh "$out" | cut -f1))"
