"""Hunt for Yjs updates and state vectors that make pycrdt panic (or raise something other than
ValueError): a standalone script, not a test. Not needed by CI.

    python tests/soak/pycrdt_hunt.py --seed 1 --inputs 30000

Valid updates from real pycrdt edits (Text with formatting, nested Array and Map, XML,
deletions, client ids up to 2^53 - 1) are mutated structurally (bit flips, inserted, deleted
and repeated bytes, truncation, splices, a var-uint replaced by a huge one). Each input goes
through ``focusmate.document.validate_update``; what passes is then tried where a peer would
meet it: applied on top of real content, merged with it as the relay does, the merge applied
and folded, and a state vector diffed. Every distinct failure that is not a ValueError is
printed with its inputs in hex. Findings so far are in ``docs/reliability.md``.
"""

from __future__ import annotations

import argparse
import random
import time
from collections.abc import Callable
from typing import Any

from pycrdt import (
    Array,
    Doc,
    Map,
    Text,
    XmlElement,
    XmlFragment,
    XmlText,
    get_state,
    get_update,
    merge_updates,
)

from focusmate.document import validate_update
from focusmate.errors import ValidationError
from focusmate.store import fold_updates

HUGE = [0x7F, 0x80, 2**31, 2**32 + 1, 2**53 - 1, 2**53, 2**63, 2**64 - 1, 2**70]


def corpus() -> list[bytes]:
    """Updates and state vectors of real edits, by several clients."""
    out: list[bytes] = []
    for client_id in (1, 7, 2**31, 2**32 + 5, 2**53 - 1):
        doc: Doc[Any] = Doc(client_id=client_id)
        updates: list[bytes] = []
        doc.observe(lambda event, into=updates: into.append(event.update))
        text = doc.get("t", type=Text)
        text += "hello world"
        text.insert(3, "XYZ", {"bold": True})
        del text[1:4]
        items = doc.get("a", type=Array)
        items.append(1)
        items.append(Map({"k": "v", "n": [1, 2]}))
        items.append(Array([Text("inner"), 3.5]))
        del items[0]
        shared = doc.get("m", type=Map)
        shared["x"] = {"nested": {"deep": [1, None, True]}}
        shared["z"] = Text("zz")
        shared.pop("x")
        xml = doc.get("x", type=XmlFragment)
        xml.children.append(XmlElement("p", {"a": "b"}, [XmlText("hi")]))
        out += [*updates, doc.get_update(), doc.get_state()]
    return out


def _encode(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    out.append(value)
    return bytes(out)


def mutate(rng: random.Random, data: bytes, pool: list[bytes]) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        kind = rng.randrange(7)
        if kind == 0 and out:
            out[rng.randrange(len(out))] ^= 1 << rng.randrange(8)
        elif kind == 1:
            out.insert(rng.randrange(len(out) + 1), rng.randrange(256))
        elif kind == 2 and out:
            del out[rng.randrange(len(out))]
        elif kind == 3 and out:
            del out[rng.randrange(len(out)) :]
        elif kind == 4 and out:
            start = end = rng.randrange(len(out))
            while end < len(out) and out[end] & 0x80:
                end += 1
            out[start : end + 1] = _encode(rng.choice(HUGE))
        elif kind == 5:
            other = rng.choice(pool)
            out[rng.randrange(len(out) + 1) :] = other[rng.randrange(len(other) + 1) :]
        elif kind == 6 and out:
            at = rng.randrange(len(out))
            out[at:at] = out[at : at + rng.randint(1, 8)]
    return bytes(out)


def _apply_all(*updates: bytes) -> Doc[Any]:
    doc: Doc[Any] = Doc()
    for update in updates:
        doc.apply_update(update)
    return doc


def steps(update: bytes, base: bytes, vector: bytes) -> list[tuple[str, Callable[[], object]]]:
    return [
        ("apply on top of content", lambda: _apply_all(base, update)),
        ("merge (relay)", lambda: merge_updates(base, update)),
        ("apply the merge (new subscriber)", lambda: _apply_all(merge_updates(base, update))),
        ("fold the merge (relay compaction)", lambda: fold_updates([merge_updates(base, update)])),
        (
            "diff the merge for a state vector",
            lambda: get_update(merge_updates(base, update), vector),
        ),
        ("state of the merge", lambda: get_state(merge_updates(base, update))),
        ("document diff for a state vector", lambda: _apply_all(update).get_update(vector)),
    ]


def hunt(seed: int, inputs: int) -> dict[tuple[str, str], str]:
    rng = random.Random(seed)
    pool = [item for item in corpus() if item]
    found: dict[tuple[str, str], str] = {}
    valid = 0
    started = time.monotonic()
    for _ in range(inputs):
        update = mutate(rng, rng.choice(pool), pool)
        try:
            validate_update(update)
        except ValidationError:
            continue
        valid += 1
        base, vector = rng.choice(pool), mutate(rng, rng.choice(pool), pool)
        for name, step in steps(update, base, vector):
            try:
                step()
            except ValueError:
                pass
            except BaseException as err:  # a PanicException is not an Exception
                if isinstance(err, KeyboardInterrupt | SystemExit):
                    raise
                key = (name, f"{type(err).__name__}: {str(err)[:70]}")
                if key not in found:
                    found[key] = f"update={update.hex()} base={base.hex()} vector={vector.hex()}"
                    print(f"FOUND {key}: {found[key]}", flush=True)
    seconds = time.monotonic() - started
    print(f"seed {seed}: {inputs} inputs, {valid} valid, {len(found)} findings, {seconds:.0f} s")
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--inputs", type=int, default=30_000)
    args = parser.parse_args()
    hunt(args.seed, args.inputs)


if __name__ == "__main__":
    main()
