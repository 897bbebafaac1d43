"""The TCP segments of a pcap or pcapng file, through dpkt: the link layers Linux captures show
(Ethernet with VLAN tags, Linux cooked SLL and SLL2, raw IP, loopback/null), IPv4 and IPv6."""

from __future__ import annotations

import functools
import os
import socket
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Any

import dpkt

from ..errors import TraceError

LINKTYPES = {1: "ethernet", 113: "sll", 276: "sll2", 101: "raw", 12: "raw", 14: "raw",
             228: "raw", 229: "raw", 0: "null", 108: "loop"}


@dataclass
class Segment:
    ts: float  # seconds
    src: tuple[str, int]
    dst: tuple[str, int]
    seq: int
    ack: int
    flags: int
    data: bytes
    missing: int  # payload bytes the capture did not keep (its snaplen cut the frame)
    frame: int  # the frame's number in the capture, from 1


def check(path: str, kind: str) -> None:
    """Raise TraceError (one line) unless the file opens as a capture of a link type pwcli reads."""
    with _open(path) as fh:
        _reader(fh, path, kind)


def _open(path: str) -> IO[bytes]:
    try:
        return open(path, "rb")
    except OSError as exc:
        raise TraceError(f"cannot read: {exc.strerror or exc}", path=path) from None


def _reader(fh: IO[bytes], path: str, kind: str) -> tuple[Any, str]:
    try:
        reader: Any = dpkt.pcapng.Reader(fh) if kind == "pcapng" else dpkt.pcap.Reader(fh)
    except dpkt.NeedData:
        raise TraceError(f"not a readable {kind} file (it ends inside its header)",
                         path=path) from None
    except (ValueError, dpkt.UnpackError) as exc:
        raise TraceError(f"not a readable {kind} file ({exc})", path=path) from None
    link = LINKTYPES.get(reader.datalink())
    if link is None:
        raise TraceError(f"link type {reader.datalink()} is not one pwcli reads (Ethernet, "
                         "Linux cooked SLL/SLL2, raw IP, loopback)", path=path)
    return reader, link


def segments(path: str, kind: str, note: Callable[[str], None]) -> Iterator[Segment]:
    with _open(path) as fh:
        reader, link = _reader(fh, path, kind)
        frame = 0
        size = os.fstat(fh.fileno()).st_size
        pos = fh.tell()
        try:
            for ts, buf in reader:
                frame += 1
                end = fh.tell()
                if end == size and kind == "pcap" and _cut(fh, pos, len(buf)):
                    note(f"the capture ends inside frame {frame} (its last "
                         f"{_cut(fh, pos, len(buf))} bytes are not in the file)")
                    return
                pos = end
                seg = _segment(ts, buf, link, frame)
                if seg is not None:
                    yield seg
        except (dpkt.NeedData, dpkt.UnpackError, ValueError) as exc:
            note(f"frame {frame + 1} is unreadable ({exc}); the capture is read up to it")


def _cut(fh: IO[bytes], pos: int, got: int) -> int:
    """How many bytes of the pcap record at ``pos`` the file lacks (dpkt hands a short frame)."""
    head = os.pread(fh.fileno(), 16, pos)
    magic = os.pread(fh.fileno(), 4, 0)
    if len(head) < 16:
        return 0
    order = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
    caplen = struct.unpack(order + "IIII", head)[2]
    return max(0, caplen - got)


@functools.lru_cache(maxsize=4096)
def _text(fam: int, packed: bytes) -> str:
    return socket.inet_ntop(fam, packed)


def _segment(ts: float, buf: bytes, link: str, frame: int) -> Segment | None:
    try:
        ip = _ip(buf, link)
    except (dpkt.UnpackError, dpkt.NeedData, ValueError):
        return None
    if ip is None or not isinstance(ip.data, dpkt.tcp.TCP):
        return None
    tcp = ip.data
    fam = socket.AF_INET6 if isinstance(ip, dpkt.ip6.IP6) else socket.AF_INET
    src, dst = _text(fam, ip.src), _text(fam, ip.dst)
    data = bytes(tcp.data)
    if fam == socket.AF_INET:
        sent = ip.len - ip.hl * 4 - tcp.off * 4 if ip.len else len(data)  # 0: segmentation offload
    else:
        ext = sum(len(h) for h in getattr(ip, "all_extension_headers", []))
        sent = ip.plen - ext - tcp.off * 4
    return Segment(float(ts), (src, tcp.sport), (dst, tcp.dport), tcp.seq, tcp.ack, tcp.flags, data,
                   max(0, sent - len(data)), frame)


VLAN_TYPES = (0x8100, 0x88A8, 0x9100)  # 802.1Q and 802.1ad (QinQ) tags
IP_TYPES = {0x0800: dpkt.ip.IP, 0x86DD: dpkt.ip6.IP6}


def _ip(buf: bytes, link: str) -> Any:
    """The IP packet in a frame. The link headers are read by their fixed layouts (a type field
    at a known offset: cheaper than decoding each frame's every layer); IP and TCP by dpkt."""
    if link == "ethernet":
        off = 12
        kind = int.from_bytes(buf[off:off + 2], "big")
        while kind in VLAN_TYPES:
            off += 4
            kind = int.from_bytes(buf[off:off + 2], "big")
        decode = IP_TYPES.get(kind)
        return decode(buf[off + 2:]) if decode else None
    if link == "sll":  # Linux cooked v1: the protocol at bytes 14-15, 16 bytes of header
        decode = IP_TYPES.get(int.from_bytes(buf[14:16], "big"))
        return decode(buf[16:]) if decode else None
    if link == "sll2":  # Linux cooked v2: the protocol first, 20 bytes of header
        decode = IP_TYPES.get(int.from_bytes(buf[0:2], "big"))
        return decode(buf[20:]) if decode else None
    if link in ("null", "loop"):  # a 4-byte address family, then the packet
        buf = buf[4:]
    version = buf[0] >> 4 if buf else 0
    return dpkt.ip.IP(buf) if version == 4 else dpkt.ip6.IP6(buf) if version == 6 else None
