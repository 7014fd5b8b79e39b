#!/usr/bin/env python3
"""The lab's real-server web server: Python's static file server with a
listen backlog big enough for the tests' bursts of parallel connections
(http.server's own is 5, and a full accept queue drops SYNs).

usage: httpd.py PORT DIRECTORY
"""
import http.server
import os
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
    Server(("0.0.0.0", port), Handler).serve_forever()
