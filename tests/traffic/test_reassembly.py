"""TCP reassembly and HTTP/1.1 parsing on captures made to order (craft.py): the cases a real
capture shows only by luck. Each asserts the exact packets the conversion derives."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dpkt
import pytest

from pwcli.traffic.convert import open_capture

from .craft import CLIENT, SERVER, Seg, exchange, handshake, write_pcap

REQ = b"POST /up HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n0123456789"
RESP = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
FIN = dpkt.tcp.TH_FIN | dpkt.tcp.TH_ACK


def _convert(path: Path) -> tuple[list[dict[str, Any]], list[str]]:
    capture = open_capture(str(path))
    assert capture is not None
    packets = [{k: v for k, v in p.items() if k not in ("sip", "sp", "dip", "dp", "delta_ms")}
               for p in capture.dicts()]
    return packets, capture.notes


WHOLE = [
    {"forward_direction": True, "method": "POST", "uri_path": "/up", "end_stream": True,
     "headers": [["Host", "x"], ["Content-Length", "10"]], "body": "0123456789"},
    {"forward_direction": False, "status": 200, "headers": [["Content-Length", "2"]],
     "end_stream": True, "body": "ok"},
]


@pytest.mark.parametrize("link", ["ethernet", "raw", "null"])
@pytest.mark.parametrize("v6", [False, True])
def test_link_types_and_ip_versions(tmp_path: Path, link: str, v6: bool) -> None:
    kw: dict[str, Any] = {"link": link, "v6": v6}
    if v6:
        kw |= {"client": ("2001:db8::2", 40100), "server": ("2001:db8::1", 80)}
    path = write_pcap(tmp_path / "c.pcap", exchange(REQ, RESP), **kw)
    capture = open_capture(str(path))
    assert capture is not None
    packets = list(capture.dicts())
    assert [(p["sip"], p["sp"], p["dip"], p["dp"]) for p in packets] == (
        [("2001:db8::2", 40100, "2001:db8::1", 80), ("2001:db8::1", 80, "2001:db8::2", 40100)]
        if v6 else [(*CLIENT, *SERVER), (*SERVER, *CLIENT)])
    assert _convert(path) == (WHOLE, [])


def test_vlan_tags(tmp_path: Path) -> None:
    assert _convert(write_pcap(tmp_path / "c.pcap", exchange(REQ, RESP), vlan=True)) == (WHOLE, [])


def test_out_of_order_and_retransmitted_segments(tmp_path: Path) -> None:
    head, body = REQ[:-10], REQ[-10:]
    segs = [*handshake(),
            Seg(True, len(head) + 5, body[5:]),  # early: waits for the gap
            Seg(True, 0, head),
            Seg(True, 0, head),  # a retransmission: dropped
            Seg(True, len(head), body[:7]),  # overlaps what waits: the new bytes only
            Seg(False, 0, RESP), Seg(False, 0, RESP),
            Seg(True, len(REQ), flags=FIN), Seg(False, len(RESP), flags=FIN)]
    packets, notes = _convert(write_pcap(tmp_path / "c.pcap", segs))
    assert notes == []
    head_only = {k: v for k, v in WHOLE[0].items() if k != "body"} | {"end_stream": False}
    assert packets == [head_only,
                       {"forward_direction": True, "end_stream": False, "body": "0123456"},
                       {"forward_direction": True, "end_stream": True, "body": "789"},
                       WHOLE[1]]


def test_sequence_numbers_wrap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from . import craft

    monkeypatch.setitem(craft.ISN, True, (1 << 32) - 20)  # the request crosses 2**32
    assert _convert(write_pcap(tmp_path / "c.pcap", exchange(REQ, RESP))) == (WHOLE, [])


def test_a_body_over_segments_becomes_packets_as_it_arrives(tmp_path: Path) -> None:
    resp = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    chunks = [b"3\r\nabc\r\n", b"2\r\nde\r\n", b"0\r\nx-sum: 5\r\n\r\n"]
    segs = [*handshake(), Seg(True, 0, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"), Seg(False, 0, resp)]
    offset = len(resp)
    for c in chunks:
        segs.append(Seg(False, offset, c))
        offset += len(c)
    packets, _ = _convert(write_pcap(tmp_path / "c.pcap", segs))
    assert packets[1:] == [
        {"forward_direction": False, "status": 200, "end_stream": False,
         "headers": [["Transfer-Encoding", "chunked"]]},
        {"forward_direction": False, "end_stream": False, "body": "abc"},
        {"forward_direction": False, "end_stream": False, "body": "de"},
        {"forward_direction": False, "end_stream": True, "trailers": [["x-sum", "5"]]},
    ]


def test_a_missing_segment_is_said_with_where(tmp_path: Path) -> None:
    segs = [*handshake(), Seg(True, 20, REQ[20:]),  # bytes 0-19 never captured
            Seg(False, 0, flags=dpkt.tcp.TH_ACK)]
    packets, notes = _convert(write_pcap(tmp_path / "c.pcap", segs))
    assert packets == []
    assert notes == ["connection 1 (10.0.0.2:40100 -> 10.0.0.1:80): the capture is missing a "
                     "segment (acknowledged, never seen) at byte 0 of the client's stream; the "
                     "rest of the connection is skipped"]
    segs = [*handshake(), Seg(True, 20, REQ[20:])]  # nothing acknowledges: found at the end
    packets, notes = _convert(write_pcap(tmp_path / "d.pcap", segs))
    assert packets == [] and notes == [
        "connection 1 (10.0.0.2:40100 -> 10.0.0.1:80): the capture is missing a segment at byte 0 "
        "of the client's stream; the rest of the connection is skipped"]


def test_snaplen_and_a_capture_ending_mid_message(tmp_path: Path) -> None:
    segs = [*handshake(), Seg(True, 0, REQ[:40]), Seg(True, 40, REQ[40:])]
    packets, notes = _convert(write_pcap(tmp_path / "c.pcap", segs, snaplen=80))
    assert notes == ["connection 1 (10.0.0.2:40100 -> 10.0.0.1:80): the capture's snaplen cut "
                     "frame 4 (14 bytes not kept) at byte 0 of the client's stream; the rest of "
                     "the connection is skipped"]
    path = write_pcap(tmp_path / "d.pcap", [*handshake(), Seg(True, 0, REQ[:-4])])
    packets, notes = _convert(path)
    assert packets == [{"forward_direction": True, "method": "POST", "uri_path": "/up",
                        "headers": [["Host", "x"], ["Content-Length", "10"]], "end_stream": False,
                        "body": "012345"}]
    assert notes == ["connection 1 (10.0.0.2:40100 -> 10.0.0.1:80): the capture ends inside a "
                     "request (after 56 bytes of the client's stream)"]


def test_a_connection_that_is_not_http_is_tcp_data_up_to_its_first_close(tmp_path: Path) -> None:
    segs = [*handshake(), Seg(False, 0, b"220 smtp ready\r\n"), Seg(True, 0, b"EHLO x\r\n"),
            Seg(True, 8, flags=FIN), Seg(False, 16, flags=FIN)]
    packets, notes = _convert(write_pcap(tmp_path / "c.pcap", segs))
    assert packets == [{"forward_direction": False, "data": "220 smtp ready\r\n"},
                       {"forward_direction": True, "data": "EHLO x\r\n"},
                       {"forward_direction": True, "close": "fin"}]
    rst = [*handshake(), Seg(True, 0, b"\x00\x01binary\xff"),
           Seg(False, 0, flags=dpkt.tcp.TH_RST | dpkt.tcp.TH_ACK)]
    packets, _ = _convert(write_pcap(tmp_path / "d.pcap", rst))
    assert packets == [{"forward_direction": True, "data": {"base64": "AAFiaW5hcnn/"}},
                       {"forward_direction": False, "close": "rst"}]


def test_garbage_inside_http_skips_the_rest_of_that_connection(tmp_path: Path) -> None:
    bad = b"GET / HTTP/1.1\r\nHost: x\r\n\r\nthis is not a request\r\n\r\n"
    segs = [*handshake(), Seg(True, 0, bad)]
    packets, notes = _convert(write_pcap(tmp_path / "c.pcap", segs))
    assert [p.get("method") for p in packets] == ["GET"]
    assert len(notes) == 1 and notes[0].startswith(
        "connection 1 (10.0.0.2:40100 -> 10.0.0.1:80): not HTTP/1.1 within the first 52 "
        "bytes of the client's stream (illegal request line")


def test_an_upgrade_or_a_connect_tunnel_ends_what_is_replayed(tmp_path: Path) -> None:
    req = b"GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
    resp = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x05hello"
    segs = [*handshake(), Seg(True, 0, req), Seg(False, 0, resp), Seg(True, len(req), b"\x81\x80")]
    packets, notes = _convert(write_pcap(tmp_path / "ws.pcap", segs))
    assert packets[1:] == [{"forward_direction": False, "status": 101, "end_stream": True,
                            "headers": [["Upgrade", "websocket"]]}]
    assert notes == ["connection 1 (10.0.0.2:40100 -> 10.0.0.1:80): the connection switches "
                     "protocols (Upgrade: websocket); the rest of it is skipped"]
    req = b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n"
    resp = b"HTTP/1.1 200 Connection established\r\n\r\n\x16\x03\x01"
    segs = [*handshake(), Seg(True, 0, req), Seg(False, 0, resp), Seg(True, len(req), b"\x16\x03")]
    packets, notes = _convert(write_pcap(tmp_path / "c.pcap", segs))
    assert packets[1:] == [{"forward_direction": False, "status": 200, "headers": [],
                            "end_stream": False},
                           {"forward_direction": False, "end_stream": True}]
    assert notes == ["connection 1 (10.0.0.2:40100 -> 10.0.0.1:80): the connection turns into a "
                     "CONNECT tunnel; the rest of it is skipped"]
