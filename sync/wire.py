"""lib0 binary encoding, the primitives every y-protocols message is made of.

Rules (as in lib0's ``encoding``/``decoding``, which Yjs clients use):

* a *var uint* is 7 bits per byte, least significant group first, high bit set on every byte but
  the last; we accept at most 53 bits (what a JavaScript number holds exactly);
* a *var bytes* is a var uint length followed by that many bytes;
* a *var string* is a var bytes holding UTF-8.

Decoding untrusted input raises :class:`ProtocolError` with a short reason, never IndexError or
UnicodeDecodeError, and a declared length can never make us allocate more than the frame holds.
"""

from __future__ import annotations

MAX_VAR_UINT = (1 << 53) - 1
_MAX_VAR_UINT_BYTES = 8  # ceil(53 / 7)


class ProtocolError(ValueError):
    """A frame that does not follow the protocol; the connection that sent it is closed."""


def write_var_uint(out: bytearray, value: int) -> None:
    if value < 0 or value > MAX_VAR_UINT:
        raise ValueError(f"var uint out of range: {value}")
    while value > 0x7F:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    out.append(value)


def write_var_bytes(out: bytearray, data: bytes) -> None:
    write_var_uint(out, len(data))
    out += data


def write_var_string(out: bytearray, text: str) -> None:
    write_var_bytes(out, text.encode("utf-8"))


class Decoder:
    """Reads lib0 primitives from one frame; every read checks the bytes are really there."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    @property
    def remaining(self) -> int:
        return len(self.data) - self.pos

    def read_var_uint(self) -> int:
        value = 0
        shift = 0
        data = self.data
        for _ in range(_MAX_VAR_UINT_BYTES):
            if self.pos >= len(data):
                raise ProtocolError("truncated var uint")
            byte = data[self.pos]
            self.pos += 1
            value |= (byte & 0x7F) << shift
            if byte < 0x80:
                if value > MAX_VAR_UINT:
                    raise ProtocolError("var uint out of range")
                return value
            shift += 7
        raise ProtocolError("var uint too long")

    def read_var_bytes(self) -> bytes:
        length = self.read_var_uint()
        if length > self.remaining:
            raise ProtocolError(f"declared length {length} exceeds the {self.remaining} bytes left")
        start = self.pos
        self.pos += length
        return bytes(self.data[start : self.pos])

    def read_var_string(self) -> str:
        raw = self.read_var_bytes()
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolError("string is not valid UTF-8") from None

    def read_rest(self) -> bytes:
        start = self.pos
        self.pos = len(self.data)
        return bytes(self.data[start:])

    def expect_end(self) -> None:
        if self.remaining:
            raise ProtocolError(f"{self.remaining} unexpected trailing bytes")
