"""Talk to HAProxy's runtime API (the admin stats socket): one command, one answer."""
from __future__ import annotations

import csv
import io
import socket


def command(path: str, line: str, timeout: float = 5.0) -> str:
    """Send one runtime API command and return HAProxy's whole answer."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(path)
        sock.sendall(line.encode() + b"\n")
        chunks = []
        while True:
            data = sock.recv(65536)
            if not data:
                break
            chunks.append(data)
    return b"".join(chunks).decode()


def stats(path: str) -> list[dict]:
    """``show stat`` as dictionaries (pxname, svname, status, weight, scur, ...)."""
    text = command(path, "show stat").lstrip("# ")
    return list(csv.DictReader(io.StringIO(text)))
