"""A TCP proxy on 127.0.0.1 that can cut the connections it carries, to test what a monitor does
when the network fails under it: refuse new connections, cut every connection now, or cut a
connection the moment the client sends bytes containing a pattern (e.g. a query's text), which
places the cut at one chosen step of a check.

Threads, not asyncio: the code under test is synchronous and runs in the test's thread. Every
socket has a timeout and every thread is a daemon joined on `close`, so a test cannot hang on it.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress

_CHUNK = 65536
_IDLE = 0.2  # seconds between checks of the stop flag while a socket is quiet


class CuttingProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(_IDLE)
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self.refusing = False
        self.cut_on: bytes | None = None
        self.cuts = 0  # connections cut so far
        self.accepted = 0
        self._spawn(self._accept_loop)

    # ------------------------------------------------------------------ controls
    def cut_all(self) -> None:
        """Cut every connection open now (new ones are still accepted)."""
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for pair in pairs:
            self._cut(pair)

    def cut_when_sent(self, pattern: bytes | None) -> None:
        """Cut a connection when its client sends bytes containing `pattern` (None: stop doing so)."""
        self.cut_on = pattern

    def close(self) -> None:
        self._stop.set()
        self.cut_all()
        self._listener.close()
        for thread in self._threads:
            thread.join(timeout=5)

    # ------------------------------------------------------------------ plumbing
    def _spawn(self, target: object, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
        thread.start()
        self._threads.append(thread)

    def _cut(self, pair: tuple[socket.socket, socket.socket]) -> None:
        with self._lock:
            if pair in self._pairs:
                self._pairs.remove(pair)
            self.cuts += 1
        for sock in pair:
            try:
                # RST rather than FIN: what a dropped NAT entry or a killed server looks like.
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                sock.close()
            except OSError:
                pass

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.accepted += 1
            if self.refusing:
                client.close()
                continue
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            pair = (client, server)
            with self._lock:
                self._pairs.append(pair)
            self._spawn(self._pump, client, server, pair, True)
            self._spawn(self._pump, server, client, pair, False)

    def _pump(
        self,
        src: socket.socket,
        dst: socket.socket,
        pair: tuple[socket.socket, socket.socket],
        upstream: bool,
    ) -> None:
        src.settimeout(_IDLE)
        while not self._stop.is_set():
            try:
                data = src.recv(_CHUNK)
            except TimeoutError:
                continue
            except OSError:
                break
            if not data:
                break
            pattern = self.cut_on
            if upstream and pattern is not None and pattern in data:
                self.cut_on = None  # one cut per arming: the retry (reconnect) must get through
                self._cut(pair)
                return
            try:
                dst.sendall(data)
            except OSError:
                break
        for sock in pair:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        with self._lock:
            if pair in self._pairs:
                self._pairs.remove(pair)
        for sock in pair:
            sock.close()


@contextmanager
def cutting_proxy(host: str, port: int) -> Iterator[CuttingProxy]:
    proxy = CuttingProxy(host, port)
    try:
        yield proxy
    finally:
        proxy.close()
