"""A corpus of hostile MIDI uploads, written on demand (the big ones are too big to commit).

    python tests/hostile_midi.py OUT_DIR

Each file name says what is wrong with it; `EXPECTED` maps names to a fragment of the message
the user must get (None: the file is valid and must give a result).
"""

import struct
import sys
from pathlib import Path


def chunk(kind: bytes, body: bytes, length: int | None = None) -> bytes:
    return kind + struct.pack(">I", len(body) if length is None else length) + body


def header(fmt=0, ntracks=1, division=480) -> bytes:
    return chunk(b"MThd", struct.pack(">HHH", fmt, ntracks, division))


def vlq(value: int) -> bytes:
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def track(events: list[tuple[int, bytes]]) -> bytes:
    body = b"".join(vlq(delta) + data for delta, data in events) + b"\x00\xff\x2f\x00"
    return chunk(b"MTrk", body)


def notes(count: int, channel: int = 0, step: int = 120, start_delta: int = 0):
    events = []
    for i in range(count):
        pitch = 36 + (i * 7) % 48
        events.append((start_delta if i == 0 else step, bytes([0x90 | channel, pitch, 80])))
        events.append((step, bytes([0x80 | channel, pitch, 0])))
    return events


VALID = header() + track(notes(16))

CORPUS = {
    "zero-bytes.mid": b"",
    "text-renamed.mid": b"Dear user, this is a shopping list, not music.\n" * 20,
    "png-renamed.mid": b"\x89PNG\r\n\x1a\n" + b"\x00" * 200,
    "truncated.mid": VALID[: len(VALID) // 2],
    "header-only.mid": header(),
    "bad-header-length.mid": b"MThd" + struct.pack(">I", 10**9) + VALID[8:],
    "chunk-length-too-long.mid": header() + chunk(b"MTrk", track(notes(8))[8:], 10**8),
    "chunk-length-too-short.mid": header() + chunk(b"MTrk", track(notes(8))[8:], 5),
    "absurd-track-count.mid": header(fmt=1, ntracks=65535) + track(notes(4)),
    "many-empty-tracks.mid": header(fmt=1, ntracks=500)
    + track(notes(4)) * 1
    + chunk(b"MTrk", b"\x00\xff\x2f\x00") * 499,
    "absurd-tick-values.mid": header() + track(notes(4, step=0x0FFFFFFF)),
    "zero-division.mid": header(division=0) + track(notes(4)),
    "smpte-timing.mid": header(division=0xE728) + track(notes(8)),
    "no-notes.mid": header() + track([(0, b"\xff\x51\x03\x07\xa1\x20")]),
    "only-drums.mid": header() + track(notes(32, channel=9)),
    "running-status-garbage.mid": header() + chunk(b"MTrk", b"\x00\x90\x3c\x40" + b"\x81" * 64),
    "hours-long.mid": header() + track(notes(2, start_delta=480 * 2 * 3600 * 3)),
    "100k-notes.mid": header() + track(notes(100_000, step=1)),
    "50MB.mid": header() + track(notes(4)) + b"\x00" * (50 * 1024 * 1024),
    "valid-with-drums.mid": header(fmt=1, ntracks=2)
    + track(notes(16))
    + track(notes(16, channel=9)),
}

EXPECTED = {  # name: a fragment of the expected message (None: valid)
    "zero-bytes.mid": "empty",
    "text-renamed.mid": "not a MIDI file",
    "png-renamed.mid": "not a MIDI file",
    "truncated.mid": "truncated",
    "header-only.mid": "no track",
    "bad-header-length.mid": "header",
    "chunk-length-too-long.mid": "truncated",
    "chunk-length-too-short.mid": "MIDI",
    "absurd-track-count.mid": "tracks",
    "many-empty-tracks.mid": None,
    "absurd-tick-values.mid": "limit",
    "zero-division.mid": "zero ticks",
    "smpte-timing.mid": "SMPTE",
    "no-notes.mid": "no (non-drum) notes",
    "only-drums.mid": "no (non-drum) notes",
    "running-status-garbage.mid": "MIDI",
    "hours-long.mid": "limit",
    "100k-notes.mid": "limit",
    "50MB.mid": "limit",
    "valid-with-drums.mid": None,
}


def write_corpus(out: Path, skip_big: bool = False) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, data in CORPUS.items():
        if skip_big and len(data) > 10 * 1024 * 1024:
            continue
        (out / name).write_bytes(data)
        paths[name] = out / name
    return paths


if __name__ == "__main__":
    for name, path in write_corpus(Path(sys.argv[1])).items():
        print(f"{path.stat().st_size:>10}  {name}")
