"""lib0 variable-length unsigned integers, as Yjs's v1 encoding writes them.

For the few places where the store and documents read the structure of an update or a state
vector that pycrdt made (a client count, a delete set, clocks) without going through pycrdt.
Frames from the network are decoded by ``sync.wire``, which also bounds what it reads.
"""

from __future__ import annotations


def write_var_uint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


class Reader:
    """Reads var-uints from ``data`` onwards from ``pos``; ValueError when it runs out."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes, pos: int = 0) -> None:
        self.data = data
        self.pos = pos

    def var_uint(self) -> int:
        value = shift = 0
        while self.pos < len(self.data):
            byte = self.data[self.pos]
            self.pos += 1
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                return value
            shift += 7
        raise ValueError("truncated var-uint")
