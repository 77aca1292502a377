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


def test_candidates_and_random_seed(tmp_path, tiny_checkpoint, midi_files):
    out = tmp_path / "take.mid"
    proc = run_cli(
        "generate", midi_files[1], "-o", out, "--seconds", 2, "--candidates", 3,
        "--random-seed", "--checkpoint", tiny_checkpoint,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    written = sorted(p.name for p in tmp_path.glob("take-c*.mid"))
    assert written == ["take-c1.mid", "take-c2.mid", "take-c3.mid"]
    seed = int(proc.stdout.strip().splitlines()[-1].removeprefix("seed "))
    settings = json.loads(read_text_meta(tmp_path / "take-c2.mid")[0].removeprefix("musicgen "))
    assert settings["seed"] == seed and settings["candidate"] == 1


def test_train_help_gives_every_option_a_line_and_its_default():
    proc = run_cli("train", "--help")
    assert proc.returncode == 0
    options = [ln for ln in proc.stdout.splitlines() if ln.strip().startswith("--")]
    assert len(options) >= 27
    for name in ("--n-layer", "--dropout", "--velocity-shift", "--lr", "--max-steps"):
        entry = next(e for e in proc.stdout.split("\n  --") if e.startswith(name[2:]))
        assert "(default:" in " ".join(entry.split()), entry  # argparse wraps long lines


def test_rewrite_end_to_end_and_its_bad_input(tmp_path, tiny_checkpoint, midi_files):
    piece, out = midi_files[0], tmp_path / "out.mid"
    before = piece.read_bytes()
    common = ("--checkpoint", tiny_checkpoint, "--device", "cpu")
    proc = run_cli(
        "rewrite", piece, "--from", 4, "--to", 8, "--candidates", 3, "-o", out, "--json", *common
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["from"] == 4 and len(result["candidates"]) == 3 and result["after_notes"] > 0
    scores = [c["after_nll_per_note"] for c in result["candidates"]]
    assert scores == sorted(scores) and result["original"]["after_nll_per_note"] > 0
    written, original = read_midi(out).notes, read_midi(piece).notes
    outside = lambda n: n[(n[:, 0] < 4) | (n[:, 0] >= 8)][:, [0, 2, 3]]  # noqa: E731
    assert abs(outside(written) - outside(original)).max() < 0.01  # MIDI ticks round times
    settings = json.loads(read_text_meta(out)[0].removeprefix("musicgen "))
    assert settings["rewrite"] == {"from": 4.0, "to": 8.0} and settings["rank"] == 0
    assert piece.read_bytes() == before  # the original is never changed
    # (every bad span is named by the library: tests/test_rewrite.py; here, that it reaches
    # the command's user as a message, not a traceback)
    proc = run_cli("rewrite", piece, "--from", 8, "--to", 4, "-o", out, *common)
    assert proc.returncode == 2 and "before it starts" in proc.stderr, proc.stderr
    proc = run_cli("rewrite", piece, "--from", 4, "--to", 8, "-o", piece, *common)
    assert proc.returncode == 2 and "never changed" in proc.stderr
    text = tmp_path / "notes.mid"
    text.write_bytes(b"a shopping list, not music\n" * 10)
    proc = run_cli("rewrite", text, "--from", 4, "--to", 8, "-o", out, *common)
    assert proc.returncode == 2 and "MIDI" in proc.stderr, proc.stderr
