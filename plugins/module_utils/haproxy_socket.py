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
    """``show stat`` as dictionaries (pxname, svname, status, slim, scur, qcur, ...)."""
    text = command(path, "show stat").lstrip("# ")
    return list(csv.DictReader(io.StringIO(text)))


def live_map(path: str, map_path: str) -> dict:
    """A map's entries as HAProxy holds them now: {key: value}."""
    entries = {}
    for line in command(path, f"show map {map_path}").splitlines():
        parts = line.split()
        if len(parts) == 3:  # "<ref> <key> <value>"
            entries[parts[1]] = parts[2]
    return entries
