"""Export and import of a user's data as one JSON file (stats also as CSV).

An export holds the CRDT state of the user's rooms, profile and stats plus the room secrets and
local settings: everything needed to carry a profile to another machine. The private key is
included only when asked (``with_identity``), and then exactly as stored — sealed if the user
sealed it. Import merges: CRDT documents merge with what is there, so importing twice, or into a
profile that has moved on, loses nothing.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from focusmate import keyfile
from focusmate.document import validate_update
from focusmate.errors import IdentityError, ValidationError
from focusmate.invite import SECRET_BYTES, room_id_for
from focusmate.profile import profile_doc_id
from focusmate.room import DOC_KIND as ROOM_KIND
from focusmate.settings import Settings
from focusmate.workspace import KEY_NAME, Workspace

FORMAT = "focusmate-export"
VERSION = 1
MAX_EXPORT_BYTES = 256 * 1024 * 1024


def export_data(ws: Workspace, *, with_identity: bool = False) -> dict[str, Any]:
    rooms = []
    for room in ws.rooms():
        secret = ws.store.room_secret(room.room_id)
        assert secret is not None
        rooms.append(
            {
                "room_id": room.room_id,
                "name": room.name,
                "secret": _b64(secret),
                "document": _b64(ws.document(room.room_id, kind=ROOM_KIND).encode_update()),
            }
        )
    stats = ws.stats()
    data: dict[str, Any] = {
        "format": FORMAT,
        "version": VERSION,
        "exported_at": ws.now(),
        "user_id": ws.user_id,
        "settings": ws.settings.to_dict(),
        "profile": _b64(ws.profile_document().document.encode_update()),
        "rooms": rooms,
        "stats": {
            "document": _b64(stats.document.encode_update()),
            "sessions": [s.to_dict() for s in stats.sessions()],
        },
    }
    if with_identity:
        data["identity"] = json.loads((ws.profile_dir / KEY_NAME).read_text("utf-8"))
    return data


def read_export(path: Path) -> dict[str, Any]:
    """Load and check an export file's envelope; a clear error for anything else."""
    try:
        if path.stat().st_size > MAX_EXPORT_BYTES:
            raise ValidationError(f"{path} is too large to be a FocusMate export.")
        data = json.loads(path.read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValidationError(f"Cannot read {path} as a FocusMate export: {err}") from err
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise ValidationError(f"{path} is not a FocusMate export.")
    if data.get("version") != VERSION:
        raise ValidationError(
            f"{path} is export version {data.get('version')}; this FocusMate reads {VERSION}."
        )
    return data


def install_identity(profile_dir: Path, data: Mapping[str, Any]) -> bool:
    """Before a profile is first opened: adopt the exported key. True when it was written."""
    identity = data.get("identity")
    key_path = profile_dir / KEY_NAME
    if not isinstance(identity, dict) or key_path.exists():
        return False
    profile_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    staged = key_path.with_name(KEY_NAME + ".import")
    staged.write_text(json.dumps(identity), "utf-8")
    staged.chmod(0o600)
    try:
        if not keyfile.is_sealed(staged):
            keyfile.load_identity(staged)  # a damaged key never becomes the profile's key
    except IdentityError:
        staged.unlink()
        raise
    staged.replace(key_path)
    return True


def import_data(ws: Workspace, data: Mapping[str, Any]) -> dict[str, int]:
    """Merge an export into the workspace; everything is validated before anything is written."""
    rooms = [_parse_room(raw) for raw in _list(data, "rooms")]
    settings = Settings.from_dict(data.get("settings") or {})
    same_user = data.get("user_id") == ws.user_id
    stats_raw = data.get("stats") or {}
    stats_update = (
        _unb64(stats_raw.get("document"), "stats") if isinstance(stats_raw, dict) else None
    )
    profile_update = _unb64(data.get("profile"), "profile") if same_user else None
    for update in [u for _, _, u in rooms] + [stats_update, profile_update]:
        if update is not None:
            validate_update(update)
    now = ws.now()
    for room_id, secret, update in rooms:
        ws.store.add_room(room_id, secret=secret, now=now)
        ws.document(room_id, kind=ROOM_KIND).apply_remote(update, origin="import", now=now)
    ws.save_settings(settings)
    sessions = 0
    if same_user and stats_update:
        stats = ws.stats()
        before = len(stats.sessions())
        stats.document.apply_remote(stats_update, origin="import", now=now)
        sessions = len(stats.sessions()) - before
        if profile_update:
            ws.document(profile_doc_id(ws.user_id), kind="profile").apply_remote(
                profile_update, origin="import", now=now
            )
    return {"rooms": len(rooms), "sessions": sessions, "same_user": int(same_user)}


def _parse_room(raw: object) -> tuple[str, bytes, bytes]:
    if not isinstance(raw, dict):
        raise ValidationError("The export's room list is malformed.")
    secret = _unb64(raw.get("secret"), "room secret")
    if len(secret) != SECRET_BYTES or room_id_for(secret) != raw.get("room_id"):
        raise ValidationError(f"The export's room {raw.get('room_id')!r} has a wrong secret.")
    return room_id_for(secret), secret, _unb64(raw.get("document"), "room document")


def _list(data: Mapping[str, Any], key: str) -> list[Any]:
    value = data.get(key, [])
    if not isinstance(value, list):
        raise ValidationError(f"The export's {key!r} is not a list.")
    return value


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(value: object, what: str) -> bytes:
    if not isinstance(value, str):
        raise ValidationError(f"The export's {what} is missing.")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as err:
        raise ValidationError(f"The export's {what} is not valid base64.") from err
