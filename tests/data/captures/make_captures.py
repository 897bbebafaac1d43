"""How the captures in this directory were made (run as root: tcpdump listens on loopback).

    python tests/data/captures/make_captures.py [basic] [session] [extras]

A small HTTP/1.1 server (keep-alive, a chunked response, an echo of POST bodies) and a TCP echo
server on 127.0.0.1, real traffic from Python's http.client and a socket, captured by tcpdump:
``http_lo.pcap`` on the loopback interface (Ethernet link type), ``http_sll2.pcap`` on ``any``
(Linux cooked v2). ``http_lo.pcapng`` is ``http_lo.pcap`` rewritten block by block by dpkt's
pcapng writer (Debian's tcpdump writes pcap only).

``session.pcap`` and ``session.har`` are one browser-like session (keep-alive, three requests on a
connection: a GET, a POST with a JSON body, a chunked response; then a second connection) sent
through mitmproxy (``pip install mitmproxy``; mitmdump in reverse-proxy mode in front of the
server, writing the HAR with its ``hardump`` option) while tcpdump records the leg between
mitmproxy and the server: the same requests and answers, once as packets and once as HAR.

``extras.pcap``: IPv6 (``::1``) with two pipelined requests sent in one write, a request with
``Expect: 100-continue`` (the server answers ``100 Continue`` first), and a TLS client hello.
"""

from __future__ import annotations

import http.client
import shutil
import socket
import subprocess
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HERE = Path(__file__).resolve().parent


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802
        if self.path.startswith("/chunked"):
            self.send_response(200)
            self.send_header("content-type", "text/plain")
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            for part in (b"first ", b"second"):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n")
            return
        body = b"Hello from the upstream"
        self.send_response(200)
        self.send_header("content-type", "text/plain")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers["content-length"]))
        self.send_response(201)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def echo_server(sock: socket.socket) -> None:
    conn, _ = sock.accept()
    with conn:
        while data := conn.recv(100):
            conn.sendall(data.replace(b"PING", b"PONG"))


def traffic(http_port: int, tcp_port: int) -> None:
    c = http.client.HTTPConnection("127.0.0.1", http_port)
    c.request("GET", "/hello?name=pwcli", headers={"User-Agent": "capture/1", "X-Trace": "1"})
    c.getresponse().read()
    c.request("POST", "/echo", body=b'{"a": 1}', headers={"Content-Type": "application/json"})
    c.getresponse().read()
    c.request("GET", "/chunked")
    c.getresponse().read()
    c.close()
    c = http.client.HTTPConnection("127.0.0.1", http_port)
    c.request("GET", "/hello", headers={"Connection": "close"})
    c.getresponse().read()
    c.close()
    with socket.create_connection(("127.0.0.1", tcp_port)) as s:
        s.sendall(b"PING")
        s.recv(100)
        s.shutdown(socket.SHUT_WR)
        s.recv(100)


def capture(name: str, args: list[str], http_port: int, tcp_port: int) -> None:
    dump = subprocess.Popen(["tcpdump", *args, "-U", "--immediate-mode", "-w", str(HERE / name),
                             f"tcp port {http_port} or tcp port {tcp_port}"],
                            stderr=subprocess.PIPE, text=True)
    assert dump.stderr is not None
    dump.stderr.readline()  # "listening on ...": ready
    traffic(http_port, tcp_port)
    time.sleep(0.5)  # let the last segments reach the file
    dump.terminate()
    dump.wait()


BROWSER = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Chrome/131.0", "Accept": "text/html",
           "Accept-Language": "en"}


def session_traffic(port: int) -> None:
    c = http.client.HTTPConnection("127.0.0.1", port)
    c.request("GET", "/hello?name=pwcli", headers=BROWSER)
    c.getresponse().read()
    c.request("POST", "/echo", body=b'{"a": 1}',
              headers={**BROWSER, "Content-Type": "application/json"})
    c.getresponse().read()
    c.request("GET", "/chunked", headers=BROWSER)
    c.getresponse().read()
    c.close()
    c = http.client.HTTPConnection("127.0.0.1", port)
    c.request("GET", "/hello", headers=BROWSER)
    c.getresponse().read()
    c.close()


def session(mitmdump: str) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    sport = server.server_address[1]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        pport = s.getsockname()[1]
    har = HERE / "session.har"
    dump = subprocess.Popen(["tcpdump", "-i", "lo", "-U", "--immediate-mode", "-w",
                             str(HERE / "session.pcap"), f"tcp port {sport}"],
                            stderr=subprocess.PIPE, text=True)
    assert dump.stderr is not None
    dump.stderr.readline()
    mitm = subprocess.Popen([mitmdump, "--mode", f"reverse:http://127.0.0.1:{sport}",
                             "--listen-host", "127.0.0.1", "-p", str(pport), "-q",
                             "--set", f"hardump={har}"])
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", pport)).close()
            break
        except OSError:
            time.sleep(0.1)
    session_traffic(pport)
    mitm.terminate()  # writes the HAR on its way out
    mitm.wait()
    time.sleep(0.5)
    dump.terminate()
    dump.wait()


class V6Server(ThreadingHTTPServer):
    address_family = socket.AF_INET6


def extras() -> None:
    server = V6Server(("::1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    port = server.server_address[1]
    tls = socket.create_server(("127.0.0.1", 0))
    threading.Thread(target=echo_server, args=(tls,), daemon=True).start()
    dump = subprocess.Popen(["tcpdump", "-i", "lo", "-U", "--immediate-mode", "-w",
                             str(HERE / "extras.pcap"),
                             f"tcp port {port} or tcp port {tls.getsockname()[1]}"],
                            stderr=subprocess.PIPE, text=True)
    assert dump.stderr is not None
    dump.stderr.readline()
    with socket.create_connection(("::1", port)) as s:  # two requests in one write
        s.sendall(b"GET /hello?n=1 HTTP/1.1\r\nHost: [::1]\r\n\r\n"
                  b"GET /chunked HTTP/1.1\r\nHost: [::1]\r\nConnection: close\r\n\r\n")
        while s.recv(4096):
            pass
    with socket.create_connection(("::1", port)) as s:
        s.sendall(b"POST /echo HTTP/1.1\r\nHost: [::1]\r\nContent-Length: 5\r\n"
                  b"Expect: 100-continue\r\nConnection: close\r\n\r\n")
        s.recv(4096)  # HTTP/1.1 100 Continue
        s.sendall(b"hello")
        while s.recv(4096):
            pass
    import ssl

    ctx = ssl.create_default_context()
    try:
        with ctx.wrap_socket(socket.create_connection(tls.getsockname()),
                             server_hostname="localhost"):
            pass
    except (ssl.SSLError, OSError):
        pass  # the echo server is no TLS server: the client hello is what we wanted
    time.sleep(0.5)
    dump.terminate()
    dump.wait()


def basic() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    for name, args in (("http_lo.pcap", ["-i", "lo"]),
                       ("http_sll2.pcap", ["-i", "any", "-y", "LINUX_SLL2"])):
        tcp = socket.create_server(("127.0.0.1", 0))
        threading.Thread(target=echo_server, args=(tcp,), daemon=True).start()
        capture(name, args, server.server_address[1], tcp.getsockname()[1])
    import dpkt

    with open(HERE / "http_lo.pcap", "rb") as src, open(HERE / "http_lo.pcapng", "wb") as dst:
        reader = dpkt.pcap.Reader(src)
        writer = dpkt.pcapng.Writer(dst, linktype=reader.datalink())
        for ts, buf in reader:
            writer.writepkt(buf, ts=ts)


if __name__ == "__main__":
    import sys

    wanted = sys.argv[1:] or ["basic", "session", "extras"]
    if "basic" in wanted:
        basic()
    if "session" in wanted:
        session(shutil.which("mitmdump") or "mitmdump")
    if "extras" in wanted:
        extras()
