#!/bin/sh
# The virtio-user scenario's wire between rvsd and the container network:
# dpdk-testpmd in io mode forwards port 0 (net_vhost, the vhost-user socket
# that rvsd's virtio_user port connects to) to port 1 (net_af_packet on this
# container's eth0, promiscuous) and back, frame for frame.
#
# - umask 0: the vhost-user socket must be writable for rvsd, which runs as
#   another user (connect() on a Unix socket needs write permission).
# - --no-huge: testpmd's own buffers on ordinary pages. The vhost backend
#   maps rvsd's memory from the file descriptors virtio_user sends over
#   the socket (rvsd's --no-huge memory is a memfd), so nothing else has to
#   be shared.
# - stdin stays open (compose: stdin_open), else testpmd reads EOF at
#   "Press enter to exit" and quits.
set -eu
sock=${VHOST_SOCKET:-/var/run/vhost/sock}
rm -f "$sock"
umask 0
exec dpdk-testpmd -l 0,1 --no-huge -m 256 --no-pci --file-prefix fwd \
    --vdev "net_vhost0,iface=$sock,queues=1" \
    --vdev "net_af_packet0,iface=eth0" \
    -- --forward-mode=io --auto-start --nb-cores=1 --total-num-mbufs=8192 --no-mlockall
