#!/usr/bin/env python3
"""The lab's real-server web server: Python's static file server with a
listen backlog big enough for the tests' bursts of parallel connections
(http.server's own is 5, and a full accept queue drops SYNs). With a
certificate and key it serves HTTPS.

usage: httpd.py PORT DIRECTORY [CERTFILE KEYFILE]
"""
import http.server
import os
import ssl
import sys


class Handler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


class Server(http.server.ThreadingHTTPServer):
    request_queue_size = 1024
    daemon_threads = True


if __name__ == "__main__":
    port, root = int(sys.argv[1]), sys.argv[2]
    os.chdir(root)
    server = Server(("0.0.0.0", port), Handler)
    if len(sys.argv) == 5:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(sys.argv[3], sys.argv[4])
        server.socket = ctx.wrap_socket(server.socket, server_side=True)
    server.serve_forever()
