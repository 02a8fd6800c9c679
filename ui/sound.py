"""The phase-change chimes: short, soft tones synthesised once, so no audio files ship.

A rising pair of notes calls to focus, a falling pair announces a break. They are written as WAV
files in a cache directory and played with QSoundEffect at the volume in the settings. Where
there is no audio device (servers, CI) playing fails quietly: a chime is never worth a crash,
and the banner or tray still says what happened. Without QtMultimedia's system libraries
(``libpulse0`` on Linux) the player is silent, ``available`` False.

Nothing of that happens while the window opens: QtMultimedia is loaded, the files written and
the effects made when the first chime is asked for (:meth:`ChimePlayer.prepare`); a sound
effect asked to play while its file loads plays once it is loaded.
"""

from __future__ import annotations

import math
import struct
import wave
from collections import deque
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QObject, QUrl

if TYPE_CHECKING:
    from PySide6.QtMultimedia import QSoundEffect

RATE = 22_050
CHIMES = {"focus": (523.25, 783.99), "break": (783.99, 523.25)}  # C5 G5, G5 C5
NOTE_SECONDS = 0.28


def synthesise(notes: tuple[float, ...]) -> bytes:
    """16-bit mono PCM: each note a sine with a soft attack and an exponential decay."""
    frames = bytearray()
    per_note = int(RATE * NOTE_SECONDS)
    for frequency in notes:
        for i in range(per_note):
            t = i / RATE
            envelope = min(1.0, t / 0.01) * math.exp(-5.0 * t)
            sample = 0.4 * envelope * math.sin(2 * math.pi * frequency * t)
            frames += struct.pack("<h", int(sample * 32767))
    return bytes(frames)


def write_chimes(directory: Path) -> dict[str, Path]:
    """The chime files in ``directory`` (written the first time)."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, notes in CHIMES.items():
        path = directory / f"chime-{name}.wav"
        if not path.exists():
            with wave.open(str(path), "wb") as out:
                out.setnchannels(1)
                out.setsampwidth(2)
                out.setframerate(RATE)
                out.writeframes(synthesise(notes))
        paths[name] = path
    return paths


def _sound_effect_class() -> Any:
    """QSoundEffect, or None where QtMultimedia's system libraries (PulseAudio's) are missing."""
    try:
        from PySide6.QtMultimedia import QSoundEffect  # noqa: PLC0415 - loaded on first use
    except ImportError:
        return None
    return QSoundEffect


class ChimePlayer(QObject):
    """Plays a chime by name at a volume from 0 to 100."""

    def __init__(self, directory: Path, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.directory = directory
        self.effects: dict[str, QSoundEffect] = {}
        self._prepared = False
        self._available: bool | None = None
        self.played: deque[str] = deque(maxlen=16)  # the latest chimes asked for, newest last

    @property
    def available(self) -> bool:
        """Whether chimes can sound here (QtMultimedia loads)."""
        if self._available is None:
            self._available = _sound_effect_class() is not None
        return self._available

    def prepare(self) -> None:
        """Write the chime files (the first time) and load them; once."""
        if self._prepared:
            return
        self._prepared = True
        effect_class = _sound_effect_class()
        self._available = effect_class is not None
        for name, path in write_chimes(self.directory).items() if self._available else ():
            effect = effect_class(self)
            effect.setSource(QUrl.fromLocalFile(str(path)))
            self.effects[name] = effect

    def play(self, name: str, volume: int) -> None:
        if volume > 0:
            self.prepare()
        effect = self.effects.get(name)
        if effect is None or volume <= 0:
            return
        effect.setVolume(max(0.0, min(1.0, volume / 100)))
        effect.play()
        self.played.append(name)
