"""Captures made to order with dpkt's writers: TCP segments in any order, on any link type, for the
cases a real capture shows only by luck (reordering, retransmission, loss, snaplen, VLAN tags)."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path

import dpkt

CLIENT = ("10.0.0.2", 40100)
SERVER = ("10.0.0.1", 80)
ISN = {True: 1000, False: 5000}  # from_client -> initial sequence number


@dataclass
class Seg:
    from_client: bool
    offset: int = 0  # byte offset in that side's stream (0 = first byte after the SYN)
    data: bytes = b""
    flags: int = dpkt.tcp.TH_ACK
    ts: float | None = None


def handshake() -> list[Seg]:
    syn = dpkt.tcp.TH_SYN
    return [Seg(True, -1, flags=syn), Seg(False, -1, flags=syn | dpkt.tcp.TH_ACK), Seg(True, 0)]


def frame(seg: Seg, ack: int = 0, *, link: str = "ethernet", vlan: bool = False,
          v6: bool = False, client: tuple[str, int] = CLIENT,
          server: tuple[str, int] = SERVER) -> bytes:
    src, dst = (client, server) if seg.from_client else (server, client)
    seq = (ISN[seg.from_client] + 1 + seg.offset) % (1 << 32)
    tcp = dpkt.tcp.TCP(sport=src[1], dport=dst[1], seq=seq, ack=ack, flags=seg.flags,
                       data=seg.data)
    if v6:
        fam = socket.AF_INET6
        ip: dpkt.Packet = dpkt.ip6.IP6(src=socket.inet_pton(fam, src[0]),
                                       dst=socket.inet_pton(fam, dst[0]),
                                       nxt=dpkt.ip.IP_PROTO_TCP, hlim=64, data=tcp, plen=len(tcp))
    else:
        fam = socket.AF_INET
        ip = dpkt.ip.IP(src=socket.inet_pton(fam, src[0]), dst=socket.inet_pton(fam, dst[0]),
                        p=dpkt.ip.IP_PROTO_TCP, data=tcp)
        ip.len = len(ip)
    if link == "raw":
        return bytes(ip)
    if link == "null":
        return bytes(dpkt.loopback.Loopback(family=24 if v6 else 2, data=ip))
    kind = dpkt.ethernet.ETH_TYPE_IP6 if v6 else dpkt.ethernet.ETH_TYPE_IP
    eth = dpkt.ethernet.Ethernet(src=b"\x02" * 6, dst=b"\x04" * 6, data=ip, type=kind)
    raw = bytes(eth)
    if vlan:  # an 802.1Q tag between the addresses and the type
        raw = raw[:12] + b"\x81\x00\x00\x2a" + raw[12:]
    return raw


LINKTYPES = {"ethernet": dpkt.pcap.DLT_EN10MB, "raw": 101, "null": dpkt.pcap.DLT_NULL}


def write_pcap(path: Path, segs: list[Seg], *, link: str = "ethernet", snaplen: int = 65535,
               **kw: object) -> Path:
    """Each segment acknowledges all the peer's segments listed before it (a FIN counts one)."""
    sent = {True: 0, False: 0}
    with open(path, "wb") as fh:
        w = dpkt.pcap.Writer(fh, snaplen=snaplen, linktype=LINKTYPES[link])
        for i, seg in enumerate(segs):
            peer = not seg.from_client
            ack = (ISN[peer] + 1 + sent[peer]) % (1 << 32)
            buf = frame(seg, ack, link=link, **kw)  # type: ignore[arg-type]
            end = seg.offset + len(seg.data) + bool(seg.flags & dpkt.tcp.TH_FIN)
            sent[seg.from_client] = max(sent[seg.from_client], end)
            w.writepkt(buf[:snaplen], ts=seg.ts if seg.ts is not None else 1_700_000_000 + i / 1000)
    return path


def exchange(request: bytes, response: bytes) -> list[Seg]:
    """A handshake, one request and its response, each in one segment, and both FINs."""
    fin = dpkt.tcp.TH_FIN | dpkt.tcp.TH_ACK
    return [*handshake(), Seg(True, 0, request), Seg(False, 0, response),
            Seg(True, len(request), flags=fin), Seg(False, len(response), flags=fin)]
