"""A TCP relay that watches what passes: pwcli's recorder in front of Envoy and behind it.

Each accepted connection is joined to a new connection to the relay's target (which may change:
``retarget`` points new connections at a reloaded Envoy) and bytes are copied both ways by two
threads. Every chunk is handed to the ``Tap`` before it is forwarded, so what a tap has seen always
precedes what the next hop sees. In front of Envoy the relay opens each connection with a PROXY
protocol v1 line, so Envoy (and the plugin) see the real client and the address it connected to.
"""

from __future__ import annotations

import socket
import threading
import time
from typing import Protocol

Address = tuple[str, int]


class Tap(Protocol):
    def opened(self, conn: int, client: Address, server: Address) -> None: ...
    def data(self, conn: int, from_client: bool, data: bytes, ts: float) -> None: ...
    def closed(self, conn: int, from_client: bool, ts: float) -> None: ...


class Relay:
    """Listen on ``listen`` (port 0: any free one) and relay to ``target()``."""

    def __init__(self, listen: Address, target: Address, tap: Tap, *,
                 proxy_protocol: bool = False) -> None:
        self.sock = socket.create_server(listen, family=_family(listen[0]), reuse_port=False)
        self.address: Address = self.sock.getsockname()[:2]
        self.target = target
        self.tap = tap
        self.proxy_protocol = proxy_protocol
        self.count = 0
        self.lock = threading.Lock()
        self.open: set[socket.socket] = set()
        self.stopped = False
        self.thread = threading.Thread(target=self._accept, daemon=True, name="pwcli-relay")
        self.thread.start()

    def retarget(self, target: Address) -> None:
        """New connections go to ``target`` from now on (those open stay where they are)."""
        self.target = target

    def stop(self) -> None:
        self.stopped = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes the accept() in progress (Linux)
        except OSError:
            pass
        self.sock.close()
        with self.lock:
            for s in list(self.open):
                _close(s)
            self.open.clear()
        self.thread.join(timeout=5)

    def _accept(self) -> None:
        while not self.stopped:
            try:
                client, addr = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.count += 1
                number = self.count
            threading.Thread(target=self._serve, args=(number, client, addr[:2]), daemon=True,
                             name=f"pwcli-relay-{number}").start()

    def _serve(self, number: int, client: socket.socket, addr: Address) -> None:
        try:
            upstream = socket.create_connection(self.target, timeout=10)
            upstream.settimeout(None)
        except OSError:
            _close(client)  # the next hop is down: the client sees the connection close
            return
        with self.lock:
            if self.stopped:
                _close(client), _close(upstream)
                return
            self.open |= {client, upstream}
        local = client.getsockname()[:2]
        self.tap.opened(number, addr, local)
        if self.proxy_protocol:
            family = "TCP6" if ":" in addr[0] else "TCP4"
            upstream.sendall(f"PROXY {family} {addr[0]} {local[0]} {addr[1]} {local[1]}\r\n"
                             .encode())
        back = threading.Thread(target=self._pump, args=(number, upstream, client, False),
                                daemon=True)
        back.start()
        self._pump(number, client, upstream, True)
        back.join()
        with self.lock:
            self.open -= {client, upstream}
        _close(client), _close(upstream)

    def _pump(self, number: int, src: socket.socket, dst: socket.socket, from_client: bool) -> None:
        while True:
            try:
                data = src.recv(65536)
            except OSError:
                data = b""
            ts = time.time()
            if not data:
                self.tap.closed(number, from_client, ts)
                try:
                    dst.shutdown(socket.SHUT_WR)
                except OSError:
                    pass
                return
            self.tap.data(number, from_client, data, ts)
            try:
                dst.sendall(data)
            except OSError:
                return


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _close(s: socket.socket) -> None:
    try:
        s.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    s.close()
