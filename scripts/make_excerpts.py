"""Write the bundled MIDI excerpts: app example prompts (examples/) and test fixtures
(tests/fixtures/midi/), short windows of MAESTRO v3 *test-split* performances.

    python scripts/make_excerpts.py ../shared/data/maestro-v3.0.0

MAESTRO is CC BY-NC-SA 4.0 (Hawthorne et al., 2019); each excerpt's source is listed in the
index.json beside it.
"""

import json
import re
import sys
from pathlib import Path

from musicgen.data import list_pieces
from musicgen.midi import prompt_window, read_midi, write_midi

ROOT = Path(__file__).resolve().parent.parent
COMPOSERS = (
    "Johann Sebastian Bach",
    "Wolfgang Amadeus Mozart",
    "Ludwig van Beethoven",
    "Frédéric Chopin",
    "Franz Schubert",
    "Franz Liszt",
    "Claude Debussy",
    "Alexander Scriabin",
)
ATTRIBUTION = (
    "Excerpt of a performance from the MAESTRO dataset v3.0.0 (Hawthorne et al., "
    "2019), licensed CC BY-NC-SA 4.0."
)


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40].strip("-")


def write_set(data: Path, out: Path, composers, start: float, seconds: float) -> None:
    out.mkdir(parents=True, exist_ok=True)
    test = [p for p in list_pieces(data) if p.split == "test"]
    index = []
    for composer in composers:
        piece = next(p for p in test if p.composer == composer)
        excerpt = prompt_window(read_midi(data / piece.path, isolate=False), start, start + seconds)
        name = f"{slug(composer.split()[-1])}-{slug(piece.title)}.mid"
        write_midi(excerpt, out / name, text=f"{composer}: {piece.title}. {ATTRIBUTION}")
        index.append(
            {
                "file": name,
                "composer": composer,
                "title": piece.title,
                "source": piece.path,
                "start_seconds": start,
                "seconds": seconds,
                "attribution": ATTRIBUTION,
            }
        )
    (out / "index.json").write_text(json.dumps(index, indent=2, ensure_ascii=False) + "\n")


def main(data: str) -> None:
    data = Path(data)
    write_set(data, ROOT / "examples", COMPOSERS, start=10.0, seconds=20.0)
    write_set(data, ROOT / "tests" / "fixtures" / "midi", COMPOSERS[:6], start=30.0, seconds=12.0)


if __name__ == "__main__":
    main(sys.argv[1])
