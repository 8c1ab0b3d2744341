#!/usr/bin/env python3
"""A stand-in TTS instance for the haproxy scenario: /ready, /version and any other path
answer 200 with the colour and version given on the command line; speech takes 3 s, so a
few requests fill its slots. Standard library only."""
import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT, COLOR, VERSION = int(sys.argv[1]), sys.argv[2], sys.argv[3]


class Handler(BaseHTTPRequestHandler):
    def _answer(self):
        if self.path.startswith("/v1/audio/speech"):
            time.sleep(3)
        body = json.dumps({"color": COLOR, "version": VERSION, "path": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("0.0.0.0", PORT), Handler).serve_forever()
