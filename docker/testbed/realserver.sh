#!/bin/sh
# A real server: nginx answering with $BODY; the VIP on lo for direct
# routing (arp_ignore/arp_announce come from the container's sysctls);
# checksums in software (see client.sh). Replies sent from the server's own
# address (NAT services) go back through the director, $DIRECTOR: a
# source-address rule, so that direct-routing replies, sent from the VIP,
# still go straight to the client on the same network.
set -eu
: "${BODY:?BODY: the page to serve}" "${VIP:?VIP: the virtual address}" "${DIRECTOR:?DIRECTOR: the address of rvsd}"
ethtool -K eth0 tx off >/dev/null
ip addr add "$VIP/32" dev lo
own=$(ip -4 -o addr show dev eth0 | awk '{print $4}' | cut -d/ -f1)
ip route add default via "$DIRECTOR" dev eth0 table 100
ip rule add from "$own" lookup 100 priority 100
echo "$BODY" > /var/www/html/index.html
echo "realserver $BODY: $own, VIP $VIP on lo, replies from $own via $DIRECTOR"
exec nginx -g 'daemon off;'
