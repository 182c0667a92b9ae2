#!/usr/bin/env python3
"""Writes the demo recordings in pipelines/audio/ (deterministic; stdlib only).

Three 3 s, 22.05 kHz, 16-bit mono WAVs over a faint noise floor:
  01_dawn.wav   three rising chirps (3 -> 6 kHz, 150 ms) at 0.5, 1.4 and 2.3 s
  02_quiet.wav  noise floor only
  03_song.wav   a 0.6 s warble around 4.5 kHz at 1.0 s and one faint chirp at 2.2 s
Run from the repository root: python3 scripts/make-demo-audio.py
"""
import math
import random
import struct
import wave

RATE = 22050
SECONDS = 3.0


def chirp(t, start, length, f0, f1, amp):
    if not (start <= t < start + length):
        return 0.0
    u = t - start
    phase = 2 * math.pi * (f0 * u + (f1 - f0) * u * u / (2 * length))
    envelope = math.sin(math.pi * u / length)
    return amp * envelope * math.sin(phase)


def warble(t, start, length, amp):
    if not (start <= t < start + length):
        return 0.0
    u = t - start
    f = 4500 + 400 * math.sin(2 * math.pi * 12 * u)
    return amp * math.sin(math.pi * u / length) * math.sin(2 * math.pi * f * u)


def write(name, events, seed):
    rng = random.Random(seed)
    frames = bytearray()
    for i in range(int(RATE * SECONDS)):
        t = i / RATE
        value = rng.gauss(0.0, 0.002) + sum(e(t) for e in events)
        frames += struct.pack("<h", max(-32767, min(32767, int(value * 32767))))
    with wave.open(f"pipelines/audio/{name}", "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(bytes(frames))


write("01_dawn.wav", [lambda t, s=s: chirp(t, s, 0.15, 3000, 6000, 0.4) for s in (0.5, 1.4, 2.3)], 1)
write("02_quiet.wav", [], 2)
write("03_song.wav", [lambda t: warble(t, 1.0, 0.6, 0.3), lambda t: chirp(t, 2.2, 0.15, 3000, 6000, 0.01)], 3)
