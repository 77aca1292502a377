"""Child process for parsing untrusted MIDI: bytes on stdin, an .npz (notes, warnings) on stdout.

Exit 2 with the message on stderr for a clean InvalidMidiError; any other failure (including a
native crash) is reported by the parent as a malformed file.
"""

import io
import resource
import sys

import numpy as np

from .errors import InvalidMidiError
from .midi import parse_in_process

MEMORY_LIMIT_BYTES = 2 * 1024**3


def main() -> int:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT_BYTES, MEMORY_LIMIT_BYTES))
    data = sys.stdin.buffer.read()
    try:
        notes, warnings = parse_in_process(data)
    except InvalidMidiError as exc:
        print(str(exc).replace("\n", " "), file=sys.stderr)
        return 2
    out = io.BytesIO()
    np.savez(out, notes=notes, warnings=np.array(warnings, dtype=str))
    sys.stdout.buffer.write(out.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(main())
