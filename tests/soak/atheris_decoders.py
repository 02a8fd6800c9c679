"""Coverage-guided fuzzing (atheris, libFuzzer) of every decoder of untrusted input.

Not collected by pytest and not needed by CI. Needs ``atheris`` (3.0 has CPython 3.11 wheels)::

    python tests/soak/atheris_decoders.py -max_total_time=300 -rss_limit_mb=2048

The first input byte picks the decoder, the rest is its input; the seed corpus is valid frames
from the real encoders (written to a scratch directory unless a corpus directory is given).
A crash is any exception other than the decoder's documented one (``ProtocolError`` or
``ValidationError``); libFuzzer saves the input as ``crash-<sha1>``. Yjs updates that pass
validation and then make pycrdt panic when applied on top of a document with content are not
crashes here (``CrdtDocument.apply_remote`` contains them) but are counted and printed at exit.
"""

from __future__ import annotations

import atexit
import collections
import sys
import tempfile
from pathlib import Path
from typing import Any

import atheris  # type: ignore[import-untyped, import-not-found, unused-ignore]

with atheris.instrument_imports():
    from focusmate.document import validate_update
    from focusmate.errors import ValidationError
    from focusmate.invite import Invite, parse_invite
    from sync import control
    from sync.discovery import parse_advert, parse_txt
    from sync.wire import ProtocolError
    from sync.ysync import (
        AwarenessEntry,
        AwarenessMessage,
        SyncStep1,
        SyncUpdate,
        decode_message,
        encode_message,
    )

import pycrdt  # native: nothing to instrument

DECODERS = ["y-message", "control", "doc-frame", "invite", "advert", "yjs-update"]
RUNS: collections.Counter[str] = collections.Counter()
PANICS: dict[str, str] = {}


def _base_doc_update() -> bytes:
    doc: pycrdt.Doc[Any] = pycrdt.Doc(client_id=1)
    doc.get("t", type=pycrdt.Text).insert(0, "hello world")
    doc.get("m", type=pycrdt.Map)["k"] = {"nested": [1, 2]}
    doc.get("a", type=pycrdt.Array).append(pycrdt.Map({"x": 1}))
    return doc.get_update()


BASE = _base_doc_update()


def seeds() -> list[bytes]:
    invite = Invite(b"\x01" * 12, "Room", ("ws://127.0.0.1:8765",))
    return [
        bytes([0]) + encode_message(SyncStep1(pycrdt.get_state(BASE))),
        bytes([0]) + encode_message(SyncUpdate(BASE)),
        bytes([0]) + encode_message(AwarenessMessage((AwarenessEntry(5, 1, {"u": "a"}),))),
        bytes([1]) + control.encode(control.Ping(id="p", t0=1.5)).encode(),
        bytes([1]) + control.encode(control.DmSend(envelope={"a": [1, {"b": None}]})).encode(),
        bytes([2]) + control.encode_doc_frame("a" * 32, encode_message(SyncUpdate(BASE))),
        bytes([3]) + invite.link().encode(),
        bytes([3]) + invite.code.encode(),
        bytes([4]) + b"\x22id=RB9FH-WE4RB-SBPJ1-5XTFG-Q2TP4\x03v=1",
        bytes([5]) + BASE,
    ]


def one_input(data: bytes) -> None:
    if not data:
        return
    kind = DECODERS[data[0] % len(DECODERS)]
    body = data[1:]
    RUNS[kind] += 1
    if RUNS.total() % 50_000 == 0:
        report()  # libFuzzer leaves with _exit, so atexit may not run
    if kind == "y-message":
        try:
            message = decode_message(body)
        except ProtocolError:
            return
        assert decode_message(encode_message(message)) == message
    elif kind == "control":
        try:
            decoded = control.decode(body)
        except ProtocolError:
            return
        assert control.decode(control.encode(decoded).encode("utf-8")) == decoded
    elif kind == "doc-frame":
        try:
            doc_id, payload = control.decode_doc_frame(body)
            decode_message(payload)
        except ProtocolError:
            return
        assert len(doc_id) <= control.MAX_DOC_ID
    elif kind == "invite":
        try:
            parse_invite(body.decode("utf-8", "surrogateescape"))
        except ValidationError:
            return
    elif kind == "advert":
        try:
            parse_txt(body)
            parse_advert("x._focusmate._tcp.local.", 1 + body[0] if body else 0, body, ["10.0.0.1"])
        except ValidationError:
            return
    else:
        yjs_update(body)


def yjs_update(update: bytes) -> None:
    try:
        validate_update(update)
    except ValidationError:
        return
    doc: pycrdt.Doc[Any] = pycrdt.Doc()
    doc.apply_update(BASE)
    try:
        doc.apply_update(update)
    except (ValueError, RuntimeError):
        pass
    except BaseException as err:  # a panic past validation: contained by apply_remote
        if isinstance(err, KeyboardInterrupt | SystemExit):
            raise
        PANICS.setdefault(f"{type(err).__name__}: {err}"[:120], update.hex())


def report() -> None:
    print(f"inputs per decoder: {dict(RUNS)}", file=sys.stderr)
    for what, example in PANICS.items():
        print(f"pycrdt panic past validation: {what} (e.g. {example})", file=sys.stderr)


def main() -> None:
    atexit.register(report)
    args = sys.argv[:]
    if not any(not arg.startswith("-") for arg in args[1:]):
        corpus = Path(tempfile.mkdtemp(prefix="atheris-corpus-"))
        for i, seed in enumerate(seeds()):
            (corpus / f"seed-{i}").write_bytes(seed)
        args.append(str(corpus))
    atheris.Setup(args, one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
