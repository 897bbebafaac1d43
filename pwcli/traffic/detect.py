"""What a file is, by its first bytes (then its name): pcap, pcapng, HAR, or none of them."""

from __future__ import annotations

from pathlib import Path

PCAP_MAGICS = {b"\xd4\xc3\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d"}
PCAPNG_MAGIC = b"\x0a\x0d\x0d\x0a"
SUFFIXES = {".pcap": "pcap", ".cap": "pcap", ".pcapng": "pcapng", ".har": "har"}


def sniff(path: str | Path) -> str | None:
    """``"pcap"``, ``"pcapng"``, ``"har"`` or None (a trace, or something else)."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096)
    except OSError:
        return None
    if head[:4] in PCAP_MAGICS:
        return "pcap"
    if head[:4] == PCAPNG_MAGIC:
        return "pcapng"
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if text.startswith(b"{") and b'"log"' in text[:200]:
        return "har"
    # Not recognised by content: a capture's own name still says what it should be, so that
    # its error is about that format.
    return SUFFIXES.get(Path(path).suffix.lower())
