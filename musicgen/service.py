"""What the app does for one request, without any UI: read the upload safely, preview the prompt
window, generate, and write every output into a fresh per-request folder.

Output folders live under one root owned by the service; folders older than `max_age_s` are
removed as new requests arrive, and paths are only ever created here (never taken from a client),
so a request cannot read or write anywhere else.
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .errors import InvalidMidiError, InvalidParameterError
from .generate import Progress, SamplingConfig
from .midi import MAX_FILE_BYTES, Performance, prompt_window, read_midi
from .pianoroll import draw
from .pipeline import Result, Studio

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Preview:
    window: Performance
    wav: Path | None
    roll: Path
    summary: str


@dataclass(frozen=True)
class CandidateFiles:
    wav: Path | None
    midi: Path  # prompt + continuation
    continuation_midi: Path
    roll: Path
    settings: dict


@dataclass
class Outcome:
    candidates: list[CandidateFiles]
    seconds_taken: float
    stopped_early: bool
    notes: list[str] = field(default_factory=list)

    def describe(self, studio: Studio) -> str:
        c = self.candidates[0].settings
        lines = [
            f"**{len(self.candidates)} candidate(s)** · seed **{c['seed']}** · "
            f"{c['seconds']:.0f} s requested · temperature {c['temperature']:g} · "
            f"top-k {c['top_k'] or 'off'} · top-p {c['top_p']:g}"
            + (f" · style {c['composer']}" if c["composer"] else ""),
            f"Took **{self.seconds_taken:.2f} s** on `{studio.device}` with checkpoint "
            f"`{studio.name}`"
            + (" · stopped early, kept what was generated" if self.stopped_early else ""),
        ]
        return "\n\n".join(lines + self.notes)


class Service:
    def __init__(
        self,
        studios: Studio | list[Studio],
        output_root: str | Path | None = None,
        max_age_s: float = 3600.0,
    ):
        studios = [studios] if isinstance(studios, Studio) else list(studios)
        self.studios = {s.name: s for s in studios}  # the default first
        self.studio = studios[0]
        root = output_root or Path(tempfile.gettempdir()) / "musicgen-outputs"
        self.output_root = Path(root).resolve()
        self.output_root.mkdir(parents=True, exist_ok=True)
        self.max_age_s = max_age_s
        self._cleanup_lock = threading.Lock()

    # ----- files

    def new_folder(self) -> Path:
        self.cleanup()
        return Path(tempfile.mkdtemp(prefix="req-", dir=self.output_root))

    def cleanup(self) -> int:
        """Remove request folders older than max_age_s; returns how many were removed."""
        removed, cutoff = 0, time.time() - self.max_age_s
        with self._cleanup_lock:
            for folder in self.output_root.glob("req-*"):
                try:
                    if folder.stat().st_mtime < cutoff:
                        shutil.rmtree(folder, ignore_errors=True)
                        removed += 1
                except FileNotFoundError:
                    pass
        return removed

    def read_prompt(self, path: str | Path | None) -> Performance:
        if path is None or str(path) == "":
            raise InvalidMidiError("Upload a MIDI file or pick an example first.")
        path = Path(path)
        if path.suffix.lower() not in (".mid", ".midi"):
            raise InvalidMidiError("Please upload a .mid or .midi file.")
        return read_midi(path, isolate=True, max_bytes=MAX_FILE_BYTES)

    def _audio(self, perf: Performance, path: Path, notes: list[str]) -> Path | None:
        ok, why = self.studio.audio_available()
        if not ok:
            if why not in notes:
                notes.append(f"Audio is off: {why}")
            return None
        return self.studio.renderer.render_wav(perf, path)

    def model(self, name: str | None) -> Studio:
        """The studio of a loaded checkpoint by name (None or blank: the default)."""
        if name is None or str(name).strip() == "":
            return self.studio
        if name not in self.studios:
            raise InvalidParameterError(
                f"Unknown model '{name}': choose one of {', '.join(self.studios)}."
            )
        return self.studios[name]

    # ----- requests

    def preview(self, path, start: float | None, end: float | None) -> Preview:
        perf = self.read_prompt(path)
        window = prompt_window(perf, _none_if_blank(start), _none_if_blank(end))
        folder = self.new_folder()
        notes = list(perf.warnings)
        wav = self._audio(window, folder / "prompt.wav", notes)
        roll = folder / "prompt.png"
        draw(window).save(roll)
        summary = (
            f"File: {perf.duration:.1f} s, {len(perf)} notes. The model hears "
            f"{window.duration:.1f} s ({len(window)} notes)."
        )
        return Preview(window, wav, roll, " ".join([summary, *notes]))

    def generate(
        self,
        path,
        config: SamplingConfig,
        start: float | None = None,
        end: float | None = None,
        on_progress: Callable[[Progress], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        model: str | None = None,
    ) -> Outcome:
        studio = self.model(model)
        perf = self.read_prompt(path)
        started = time.perf_counter()
        results = studio.continue_midi(
            perf, config, _none_if_blank(start), _none_if_blank(end), on_progress, should_stop
        )
        stopped = bool(should_stop and should_stop())
        folder = self.new_folder()
        notes = list(perf.warnings)
        candidates = [self._write(folder, r, notes) for r in results]
        if any(len(r.continuation.continuation) == 0 for r in results):
            notes.append("A candidate added no notes (silence was its continuation).")
        return Outcome(candidates, time.perf_counter() - started, stopped, notes)

    def _write(self, folder: Path, result: Result, notes: list[str]) -> CandidateFiles:
        stem = f"musicgen-seed{result.settings['seed']}-{result.candidate + 1}"
        midi = folder / f"{stem}.mid"
        continuation = folder / f"{stem}-continuation.mid"
        self.studio.write_result(result, midi, continuation_only=continuation)
        wav = self._audio(result.continuation.combined, folder / f"{stem}.wav", notes)
        roll = folder / f"{stem}.png"
        self.studio.pianoroll(result).save(roll)
        (folder / f"{stem}.json").write_text(json.dumps(result.settings, indent=2))
        return CandidateFiles(wav, midi, continuation, roll, result.settings)


def _none_if_blank(value):
    """UI number boxes send None or '' for 'not set'."""
    if value is None or (isinstance(value, str) and value.strip() == ""):
        return None
    return value
