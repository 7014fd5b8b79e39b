#!/usr/bin/env python3
"""Counts the IPv4 packets a host sends out of one interface, as they leave.

A packet socket on the interface sees each frame as the device transmits it:
after the stack's segmentation (TCP always builds large segments and lets
the device, or software GSO just before it, cut them), so the count is of
packets on the wire. Only outgoing frames to DST with the given protocol and
port are counted, with their IP length (what IPVS adds to InBytes).

usage: count-packets.py IFACE DST tcp|udp dport|sport PORT

Prints "ready" once listening; on SIGTERM or SIGINT it reads what is still
queued, prints "packets N bytes M" and exits.
"""
import signal
import socket
import struct
import sys

ETH_P_ALL = 0x0003
PACKET_OUTGOING = 4


def main():
    iface, dst, proto, which, port = sys.argv[1:6]
    dst = socket.inet_aton(dst)
    proto = {"tcp": 6, "udp": 17}[proto]
    port = int(port)
    port_at = 2 if which == "dport" else 0
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    s.bind((iface, 0))
    s.settimeout(0.1)
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    signal.signal(signal.SIGINT, lambda *_: stop.append(1))
    packets = octets = 0
    print("ready", flush=True)
    while True:
        try:
            frame, addr = s.recvfrom(65536)
        except socket.timeout:
            # Asked to stop: what was sent before is queued on the socket;
            # stop once it is drained.
            if stop:
                break
            continue
        except InterruptedError:
            continue
        if addr[2] != PACKET_OUTGOING or len(frame) < 34 or frame[12:14] != b"\x08\x00":
            continue
        ip = frame[14:]
        ihl = (ip[0] & 0x0F) * 4
        if ip[9] != proto or ip[16:20] != dst or len(ip) < ihl + 4:
            continue
        if struct.unpack("!H", ip[ihl + port_at : ihl + port_at + 2])[0] != port:
            continue
        packets += 1
        octets += struct.unpack("!H", ip[2:4])[0]
    print(f"packets {packets} bytes {octets}", flush=True)


if __name__ == "__main__":
    main()
