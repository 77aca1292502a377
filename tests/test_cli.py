import json
import os
import subprocess
import sys
import wave

import pytest

from musicgen.midi import read_midi, read_text_meta

pytestmark = pytest.mark.slow  # real processes: a server, the CLI, training runs


def run_cli(*args, env=None):
    env = dict(os.environ, OMP_NUM_THREADS="1", **(env or {}))
    return subprocess.run(
        [sys.executable, "-m", "musicgen", *map(str, args)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )


def test_generate_end_to_end(tmp_path, tiny_checkpoint, midi_files):
    out, wav = tmp_path / "out.mid", tmp_path / "out.wav"
    proc = run_cli(
        "generate",
        midi_files[0],
        "-o",
        out,
        "--wav",
        wav,
        "--seconds",
        4,
        "--seed",
        0,
        "--checkpoint",
        tiny_checkpoint,
        "--device",
        "cpu",
    )
    assert proc.returncode == 0, proc.stderr
    result = read_midi(out)
    assert len(result) >= len(read_midi(midi_files[0]))  # prompt + continuation
    settings = json.loads(read_text_meta(out)[0].removeprefix("musicgen "))
    assert settings["seed"] == 0 and settings["seconds"] == 4.0
    with wave.open(str(wav)) as f:
        assert f.getframerate() == 44_100 and f.getnframes() > 0


def test_generate_without_checkpoint_says_so(tmp_path, midi_files):
    proc = run_cli(
        "generate", midi_files[0], "-o", tmp_path / "o.mid", "--checkpoint", tmp_path / "empty"
    )
    assert proc.returncode == 2
    assert "No trained checkpoint is installed" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_generate_rejects_bad_input_cleanly(tmp_path, tiny_checkpoint):
    bad = tmp_path / "bad.mid"
    bad.write_bytes(b"not midi at all")
    proc = run_cli("generate", bad, "-o", tmp_path / "o.mid", "--checkpoint", tiny_checkpoint)
    assert proc.returncode == 2 and "not a MIDI file" in proc.stderr
    proc = run_cli(
        "generate",
        bad,
        "-o",
        tmp_path / "o.mid",
        "--checkpoint",
        tiny_checkpoint,
        "--temperature",
        "nan",
    )
    assert proc.returncode == 2 and "temperature" in proc.stderr
