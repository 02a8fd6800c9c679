"""Human-typable codes: user ids and room invite codes.

People read these aloud, retype them from a screenshot and paste them from chat, so:

- the alphabet is Crockford's base32 (no I, L, O or U), and on input I/L read as 1 and O as 0;
- case, spaces and dashes do not matter, and output is grouped with dashes for reading;
- the last character is a Luhn mod 32 check character, which catches every single-character
  substitution and most adjacent swaps, so a typo gets a clear message instead of "not found".

Everything here is pure: no randomness, no I/O.
"""

from __future__ import annotations

from focusmate.errors import ValidationError

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_BASE = len(ALPHABET)
_VALUE = {char: value for value, char in enumerate(ALPHABET)}
# Read-alikes people type by mistake; Crockford defines these as the same symbols.
_ALIASES = {"I": "1", "L": "1", "O": "0"}
# Separators that are dropped: ASCII dash and the Unicode dashes chat apps and word processors
# substitute for it. Whitespace of any kind is dropped as well.
_DASHES = frozenset("-\u2010\u2011\u2012\u2013\u2014\u2212")


def encode_base32(data: bytes) -> str:
    """Encode bytes most-significant bit first, zero-filling the last character (no padding)."""
    nbits = len(data) * 8
    nchars = _chars_for(len(data))
    value = int.from_bytes(data, "big") << (nchars * 5 - nbits)
    return "".join(ALPHABET[(value >> (5 * i)) & 31] for i in reversed(range(nchars)))


def decode_base32(text: str, *, nbytes: int) -> bytes:
    """Decode exactly ``nbytes`` bytes; a wrong length or non-zero fill bits are rejected.

    Rejecting stray fill bits keeps the encoding one-to-one, so two spellings never name the
    same bytes.
    """
    if nbytes < 0:
        raise ValueError("nbytes must not be negative")
    body = normalize(text)
    nchars = _chars_for(nbytes)
    if len(body) != nchars:
        raise ValidationError(
            f"A code for {nbytes} bytes has {nchars} characters, not {len(body)}."
        )
    value = 0
    for char in body:
        value = (value << 5) | _VALUE[char]
    spare = nchars * 5 - nbytes * 8
    if value & ((1 << spare) - 1):
        raise ValidationError("That code is not valid (its last character is impossible).")
    return (value >> spare).to_bytes(nbytes, "big")


def normalize(text: str, *, what: str = "code") -> str:
    """Return the canonical spelling: uppercase, no separators, read-alikes mapped.

    ``what`` names the thing in the error message ("user id", "invite code").
    """
    out: list[str] = []
    for original in text:
        if original.isspace() or original in _DASHES:
            continue
        # Only ASCII is uppercased: "ß".upper() is "SS", which would hide the real culprit.
        char = original.upper() if original.isascii() else original
        char = _ALIASES.get(char, char)
        if char not in _VALUE:
            raise ValidationError(
                f"That {what} contains {original!r}, which is not a letter or digit codes use."
            )
        out.append(char)
    return "".join(out)


def check_char(body: str) -> str:
    """The Luhn mod 32 check character for a canonical ``body``.

    The doubling step is a permutation of 0..31, which is why every single substitution
    changes the sum and is caught.
    """
    total = 0
    factor = 2
    for char in reversed(body):
        try:
            value = _VALUE[char]
        except KeyError:
            raise ValidationError(f"{char!r} is not a canonical code character.") from None
        addend = factor * value
        total += addend // _BASE + addend % _BASE
        factor = 3 - factor  # alternates 2, 1, 2, ...
    return ALPHABET[(_BASE - total % _BASE) % _BASE]


def group(text: str, size: int = 5) -> str:
    """Insert a dash every ``size`` characters so a code can be read in chunks."""
    if size < 1:
        raise ValueError("group size must be at least 1")
    return "-".join(text[i : i + size] for i in range(0, len(text), size))


def make_code(data: bytes, *, group_size: int) -> str:
    """Encode ``data`` as body + check character, grouped for reading."""
    body = encode_base32(data)
    return group(body + check_char(body), group_size)


def parse_code(text: str, *, nbytes: int, what: str) -> bytes:
    """Parse a code made by :func:`make_code`; every error message names ``what`` for the user."""
    code = normalize(text, what=what)
    expected = _chars_for(nbytes) + 1
    if not code:
        raise ValidationError(f"That {what} is empty.")
    if len(code) < expected:
        raise ValidationError(
            f"That {what} is too short (it has {len(code)} of {expected} characters)."
        )
    if len(code) > expected:
        raise ValidationError(
            f"That {what} is too long (it has {len(code)} characters, not {expected})."
        )
    body, check = code[:-1], code[-1]
    if check_char(body) != check:
        raise ValidationError(f"That {what} has a typo (the check character does not match).")
    try:
        return decode_base32(body, nbytes=nbytes)
    except ValidationError:
        raise ValidationError(f"That {what} is not valid.") from None


def _chars_for(nbytes: int) -> int:
    return -(-nbytes * 8 // 5)
