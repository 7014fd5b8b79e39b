#!/usr/bin/env python3
"""A userspace tunnel endpoint for the lab's real servers.

The kernel on this kind of machine is built without ipip, GRE and FOU, so a
real server cannot terminate IPVS tunnels itself. This does the same job in
userspace: it receives the tunnelled packets (a raw socket for IPIP and GRE,
a UDP socket for GUE), strips the outer headers and writes the inner packet
into a TUN device, whence the real server's own Linux stack receives it as if
tunl0 had decapsulated it. Replies leave the normal way (direct return).

usage: tun-decap.py ipip|gre|gue:PORT|ip6ip6 TUNDEV
"""
import fcntl
import os
import socket
import struct
import sys

TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000


def open_tun(name):
    fd = os.open("/dev/net/tun", os.O_RDWR)
    fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    return fd


def main():
    kind, dev = sys.argv[1], sys.argv[2]
    tun = open_tun(dev)
    if kind.startswith("gue"):
        port = int(kind.split(":")[1])
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("0.0.0.0", port))
    elif kind == "ip6ip6":
        # IPv6 raw sockets deliver the payload without the outer header.
        s = socket.socket(socket.AF_INET6, socket.SOCK_RAW, 41)
    else:
        proto = {"ipip": 4, "gre": 47}[kind]
        s = socket.socket(socket.AF_INET, socket.SOCK_RAW, proto)
    print("ready", flush=True)
    while True:
        pkt = s.recv(65535)
        if kind == "ip6ip6":
            inner = pkt
        elif kind.startswith("gue"):
            # GUE version 0: 4-byte header, then hlen * 4 bytes of options.
            if len(pkt) < 4 or pkt[0] >> 6 != 0:
                continue
            inner = pkt[4 + (pkt[0] & 0x1F) * 4:]
        else:
            ihl = (pkt[0] & 0x0F) * 4
            inner = pkt[ihl:]
            if kind == "gre":
                flags = inner[0]
                inner = inner[4 + (4 if flags & 0x80 else 0):]
        if inner:
            os.write(tun, inner)


if __name__ == "__main__":
    main()
