"""Driving a trace's traffic through Envoy: each connection of the trace over a real TCP connection
to Envoy's listener, opened with a PROXY protocol v1 line carrying the trace's client and server
addresses; each stream's request sent as the trace has it (header order and case, the body in the
trace's packets: one packet with ``content-length``, several as chunks), its answer queued at the
mock upstream first. Streams go one at a time, in the order they open; ``delta_ms`` is waited in
real time, since Envoy's clock is real. After each stream the driver waits until Envoy has
destroyed it (the ``downstream_rq_active`` gauge back at 0), so the plugin's log lines fall in
their stream."""

from __future__ import annotations

import json
import socket
import struct
import threading
import time
from dataclasses import dataclass, field
from urllib.parse import quote

import h11

from ..engine.messages import DEFAULT_PORTS
from ..expect import openers
from ..trace import Packet, Trace
from .process import EnvoyProcess
from .upstream import Answer, Received, ScriptedUpstream, TcpUpstream

STREAM_SECONDS = 30.0


@dataclass
class EnvoyStream:
    """What one stream did in Envoy."""

    first_packet: int
    upstream: Received | None = None  # the request as it reached the upstream (None: it did not)
    status: int | None = None  # the response as it reached the client
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    trailers: list[tuple[str, str]] = field(default_factory=list)
    logs: list[tuple[str, str]] = field(default_factory=list)  # (level, message)
    error: str | None = None  # the client saw no complete response: why
    tcp: bool = False  # a TCP connection: what each side received instead of HTTP messages
    client_received: bytes = b""
    upstream_received: bytes = b""


def stream_packets(trace: Trace) -> dict[int, list[tuple[int, Packet]]]:
    """The trace's packets by stream (keyed by the index of the packet that opens it)."""
    out: dict[int, list[tuple[int, Packet]]] = {}
    for index, (opener, p) in enumerate(zip(openers(trace), trace.packets, strict=True)):
        out.setdefault(opener, []).append((index, p))
    return out


def _authority(p: Packet) -> str:
    for n, v in p.headers or []:
        if n.lower() == "host":
            return v
    if p.host is not None:
        return p.host
    ip, port = p.server
    host = f"[{ip}]" if ":" in ip else ip
    return host if port == DEFAULT_PORTS.get(p.scheme) else f"{host}:{port}"


def _target(p: Packet) -> str:
    path = p.uri_path or "/"
    if p.query_params:
        query = "&".join(f"{quote(k, safe='')}={quote(v, safe='')}"
                         for k, v in p.query_params.items())
        path += ("&" if "?" in path else "?") + query
    return path


def _proxy_line(p: Packet) -> bytes:
    (cip, cport), (sip, sport) = p.client, p.server
    family = "TCP6" if ":" in cip else "TCP4"
    return f"PROXY {family} {cip} {sip} {cport} {sport}\r\n".encode()


def answer_of(packets: list[tuple[int, Packet]]) -> Answer | None:
    """The mock upstream's answer for a stream: its server packets, with their delays."""
    server = [p for _, p in packets if not p.forward_direction]
    if not server:
        return None
    first = server[0]
    headers = [(n, v) for n, v in first.headers or [] if n != ":status"]
    chunks = [(p.delta_ms / 1000 if i else 0.0, p.body or b"") for i, p in enumerate(server)]
    trailers = [(n, v) for p in server for n, v in p.trailers or []]
    return Answer(first.status, headers, chunks, trailers, first.delta_ms / 1000)


class Driver:
    def __init__(self, envoy: EnvoyProcess, upstream: ScriptedUpstream,
                 tcp_upstream: TcpUpstream | None = None) -> None:
        self.envoy = envoy
        self.upstream = upstream
        self.tcp_upstream = tcp_upstream
        self.conns: dict[tuple, tuple[socket.socket, h11.Connection]] = {}

    def close(self) -> None:
        for sock, _ in self.conns.values():
            sock.close()

    def run(self, trace: Trace) -> list[EnvoyStream]:
        out = []
        for opener, packets in stream_packets(trace).items():
            if packets[0][1].is_tcp:
                out.append(self._tcp_stream(opener, packets))
            else:
                out.append(self._stream(opener, packets))
        return out

    def _tcp_stream(self, opener: int, packets: list[tuple[int, Packet]]) -> EnvoyStream:
        """A TCP connection: the driver plays both sides, packet by packet, in the trace's order
        and timing; each side's reader collects what Envoy forwarded to it."""
        assert self.tcp_upstream is not None
        result = EnvoyStream(opener, tcp=True)
        log_start = len(self.envoy.log_lines())
        first = packets[0][1]
        time.sleep(first.delta_ms / 1000)
        client = socket.create_connection(
            ("127.0.0.1", self.envoy.listener_ports["pwcli_tcp"]), timeout=10)
        client.sendall(_proxy_line(first))
        server = self.tcp_upstream.accept(timeout=10)
        got = {"client": bytearray(), "server": bytearray()}
        stop = threading.Event()
        readers = [threading.Thread(target=_read_all, args=(sock, got[side], stop), daemon=True)
                   for side, sock in (("client", client), ("server", server))]
        for r in readers:
            r.start()
        try:
            for i, (_, p) in enumerate(packets):
                if i:
                    time.sleep(p.delta_ms / 1000)
                sock = client if p.forward_direction else server
                if p.data:
                    sock.sendall(p.data)
                if p.close == "fin":
                    sock.shutdown(socket.SHUT_WR)
                elif p.close == "rst":
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    sock.close()
        except OSError as exc:
            result.error = f"{type(exc).__name__}: {exc}"
        if packets[-1][1].close is not None:
            self._wait_until_closed()  # Envoy has run the plugin's close callbacks
        stop.set()
        for r in readers:
            r.join(timeout=STREAM_SECONDS)
        client.close()
        server.close()
        result.client_received = bytes(got["client"])
        result.upstream_received = bytes(got["server"])
        result.logs = wasm_logs(self.envoy.log_lines()[log_start:])
        return result

    def _wait_until_closed(self) -> None:
        """Until Envoy has destroyed the TCP listener's connections."""
        path = "/stats?format=json&filter=^listener\\.pwcli_tcp\\.downstream_cx_active$"
        deadline = time.monotonic() + STREAM_SECONDS
        while time.monotonic() < deadline:
            stats = json.loads(self.envoy.admin(path)).get("stats", [])
            if stats and not any(s.get("value", 0) for s in stats):
                return
            time.sleep(0.005)  # polling Envoy's admin endpoint


    def _connection(self, p: Packet) -> tuple[socket.socket, h11.Connection]:
        key = p.key
        conn = self.conns.get(key)
        if conn is not None and conn[1].our_state is h11.IDLE and conn[1].their_state is h11.IDLE:
            return conn
        if conn is not None:
            conn[0].close()
        sock = socket.create_connection(("127.0.0.1", self.envoy.listener_port), timeout=10)
        sock.sendall(_proxy_line(p))
        conn = self.conns[key] = (sock, h11.Connection(h11.CLIENT))
        return conn

    def _stream(self, opener: int, packets: list[tuple[int, Packet]]) -> EnvoyStream:
        result = EnvoyStream(opener)
        requests = [p for _, p in packets if p.forward_direction]
        answer = answer_of(packets)
        seen = len(self.upstream.received)
        if answer is not None:
            self.upstream.expect(answer)
        log_start = len(self.envoy.log_lines())
        first = requests[0]
        sock, h = self._connection(first)
        time.sleep(first.delta_ms / 1000)  # real time: Envoy's clock is real
        headers = [("host", _authority(first))] + [
            (n, v) for n, v in first.headers or [] if n.lower() != "host"]
        bodies = [p.body or b"" for p in requests]
        trailers = [(n, v) for p in requests for n, v in p.trailers or []]
        names = {n.lower() for n, _ in headers}
        if "content-length" in names or "transfer-encoding" in names:
            pass
        elif len(requests) == 1 and not trailers and bodies[0]:
            headers.append(("content-length", str(len(bodies[0]))))
        elif len(requests) > 1 or trailers:
            headers.append(("transfer-encoding", "chunked"))
        if first.scheme == "https" and "x-forwarded-proto" not in names:
            # The listener is plain TCP: the scheme travels as x-forwarded-proto, which Envoy keeps
            # and takes :scheme from, as behind a TLS-terminating proxy.
            headers.append(("x-forwarded-proto", "https"))
        try:
            sock.sendall(h.send(h11.Request(method=first.method or "GET", target=_target(first),
                                            headers=headers)))
            for i, p in enumerate(requests):
                if i:
                    time.sleep(p.delta_ms / 1000)
                if p.body:
                    sock.sendall(h.send(h11.Data(data=p.body)))
            sock.sendall(h.send(h11.EndOfMessage(headers=trailers)))
            self._read_response(sock, h, result)
        except (OSError, h11.ProtocolError) as exc:
            result.error = f"{type(exc).__name__}: {exc}"
            sock.close()
            self.conns.pop(first.key, None)
        self._wait_until_destroyed()
        if len(self.upstream.received) > seen:
            result.upstream = self.upstream.received[seen]
        result.logs = wasm_logs(self.envoy.log_lines()[log_start:])
        return result

    def _read_response(self, sock: socket.socket, h: h11.Connection, out: EnvoyStream) -> None:
        sock.settimeout(STREAM_SECONDS)
        while True:
            event = h.next_event()
            if event is h11.NEED_DATA:
                h.receive_data(sock.recv(65536))
                continue
            if isinstance(event, h11.Response):
                out.status = event.status_code
                out.headers = [(n.decode().lower(), v.decode())
                               for n, v in event.headers.raw_items()]
            elif isinstance(event, h11.Data):
                out.body += bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                out.trailers = [(n.decode(), v.decode()) for n, v in event.headers]
                if h.our_state is h11.DONE and h.their_state is h11.DONE:
                    h.start_next_cycle()
                return
            elif isinstance(event, h11.ConnectionClosed):
                out.error = "Envoy closed the connection"
                return

    def _wait_until_destroyed(self) -> None:
        deadline = time.monotonic() + STREAM_SECONDS
        while time.monotonic() < deadline:
            stats = json.loads(self.envoy.admin(
                "/stats?format=json&filter=^http\\.pwcli\\.downstream_rq_active$"))
            active = [s.get("value", 0) for s in stats.get("stats", [])]
            if not any(active):
                return
            time.sleep(0.005)  # polling Envoy's admin endpoint


def _read_all(sock: socket.socket, into: bytearray, stop: threading.Event) -> None:
    """What Envoy forwards to one side, until it closes or the driver is done with it. A side that
    sees the other side's end closes too, as a typical client or server does."""
    sock.settimeout(0.02)
    while True:
        try:
            data = sock.recv(65536)
        except TimeoutError:
            if stop.is_set():
                return
            continue
        except OSError:
            return  # reset, or closed by the driver: what arrived is kept
        if not data:
            try:
                sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass  # already closed or reset
            return
        into.extend(data)


def wasm_logs(lines: list[str]) -> list[tuple[str, str]]:
    """The plugin's log lines in Envoy's log (``level|wasm|wasm log ...: message``)."""
    out = []
    for line in lines:
        level, _, rest = line.partition("|")
        logger, _, message = rest.partition("|")
        if logger == "wasm" and message.startswith("wasm log"):
            out.append((level, message.split(": ", 1)[1] if ": " in message else ""))
    return out
