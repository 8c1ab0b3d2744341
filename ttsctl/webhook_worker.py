"""gunicorn's threaded worker with a deadline on every read and write of a connection.

A client that sends half a request and waits would otherwise hold a request thread for
ever, and a few of them would leave none to answer Alertmanager or /health. Each socket
the worker hands to a thread gets a timeout instead of plain blocking mode; a stalled
client is dropped when it expires and its thread goes back to the pool.
"""
from __future__ import annotations

import socket

from gunicorn.workers.gthread import ThreadWorker

READ_TIMEOUT_S = 2.0  # set by `ttsctl webhook serve --read-timeout` before the worker starts


class _Deadline:
    """A socket whose blocking mode is a timeout: gunicorn asks for blocking reads, gets bounded ones."""

    def __init__(self, sock: socket.socket, seconds: float):
        self._sock = sock
        self._seconds = seconds

    def setblocking(self, flag: bool) -> None:
        self._sock.settimeout(self._seconds if flag else 0.0)

    def __getattr__(self, name):
        return getattr(self._sock, name)


class BoundedThreadWorker(ThreadWorker):
    def enqueue_req(self, conn):
        if not isinstance(conn.sock, _Deadline):
            conn.sock = _Deadline(conn.sock, READ_TIMEOUT_S)
            if conn.sock.gettimeout() is None:  # already blocking: bound it now
                conn.sock.setblocking(True)
        super().enqueue_req(conn)
