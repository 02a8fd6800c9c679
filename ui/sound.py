"""The phase-change chimes: short, soft tones synthesised once, so no audio files ship.

A rising pair of notes calls to focus, a falling pair announces a break. They are written as WAV
files in a cache directory and played with QSoundEffect at the volume in the settings. Where
there is no audio device (servers, CI) playing fails quietly: a chime is never worth a crash,
and the banner or tray still says what happened. Without QtMultimedia's system libraries
(``libpulse0`` on Linux) the player is silent, ``available`` False.
"""

from __future__ import annotations

import math
import struct
import wave
from collections import deque
from pathlib import Path

from PySide6.QtCore import QObject, QUrl

try:
    from PySide6.QtMultimedia import QSoundEffect
except ImportError:  # QtMultimedia's system libraries (PulseAudio's) are missing: no chimes
    QSoundEffect = None  # type: ignore[assignment,misc]

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


class ChimePlayer(QObject):
    """Plays a chime by name at a volume from 0 to 100."""

    def __init__(self, directory: Path, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.effects: dict[str, QSoundEffect] = {}
        self.available = QSoundEffect is not None
        for name, path in write_chimes(directory).items() if self.available else ():
            effect = QSoundEffect(self)
            effect.setSource(QUrl.fromLocalFile(str(path)))
            self.effects[name] = effect
        self.played: deque[str] = deque(maxlen=16)  # the latest chimes asked for, newest last

    def play(self, name: str, volume: int) -> None:
        effect = self.effects.get(name)
        if effect is None or volume <= 0:
            return
        effect.setVolume(max(0.0, min(1.0, volume / 100)))
        effect.play()
        self.played.append(name)
