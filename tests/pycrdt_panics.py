"""Yjs inputs that make pycrdt 0.14 (Yrs) panic, found by fuzzing (tests/soak/pycrdt_hunt.py).

A Rust panic reaches Python as pyo3's ``PanicException``, a ``BaseException`` that ``except
Exception`` misses; every path that takes updates from peers must contain it. The tests of the
client (tests/unit/test_fuzz_decoders.py) and of the relay (tests/integration/test_relay_fuzz.py,
test_relay_poisoned_log.py) feed these.
"""

from __future__ import annotations

from typing import Any

import pycrdt

from sync.wire import write_var_uint


def poison_for(client_id: int) -> bytes:
    """A 5-byte update naming ``client_id`` with no structs: it decodes on its own, but Yrs
    panics ``Option::unwrap() on None`` in ``BlockSet::exclude`` applying it to a document that
    holds that client's edits."""
    out = bytearray(b"\x01\x00")
    write_var_uint(out, client_id)
    return bytes(out + b"\x00\x00")


# Two updates for client 2^31: each decodes alone, so both pass validation, but the second
# reuses the first's ids with other content, and Yrs panics applying it on top of the first (or
# applying their merge at all).
EQUIVOCATION_BASE = bytes.fromhex("010280808080081e2701016d017a02040080808080081e027a7a00")
EQUIVOCATION = bytes.fromhex(
    "01028080808008808080801e2701016d017a0204808080808080801080c08080081e027a7a00"
)


def panic_type() -> type[BaseException]:
    """pyo3's PanicException, taken from a real panic (pycrdt does not export it)."""
    doc: pycrdt.Doc[Any] = pycrdt.Doc(client_id=5)
    doc.get("m", type=pycrdt.Map)["k"] = 1
    try:
        doc.apply_update(poison_for(5))
    except BaseException as err:  # the point: not an Exception
        return type(err)
    raise AssertionError("pycrdt no longer panics on the poison update")
