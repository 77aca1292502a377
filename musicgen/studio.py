"""The studio: the one request layer the app and the command line call.

It loads the checkpoints once, reads untrusted uploads safely, cuts the prompt window, previews
it, generates, and writes every output (MIDI with the settings embedded, WAV, piano roll) into a
fresh per-request folder under one root it owns. The flow is one way:
prompt MIDI -> window -> tokens -> model -> tokens -> MIDI -> audio / picture.

Paths are only ever created here (never taken from a client), folders older than `max_age_s`
are removed as new requests arrive, and every limit a user can hit is checked here or below.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from . import device as devices
from . import player, recorder
from .checkpoint import BUNDLED_CHECKPOINTS, WEIGHTS_FILE
from .compute import Model
from .errors import InvalidMidiError, InvalidParameterError, MusicgenError
from .generate import (
    MAX_BATCH,
    MAX_CANDIDATES,
    MAX_CONTINUATION_SECONDS,
    Continuation,
    Progress,
    SamplingConfig,
    continuation_origin,
    make_continuation,
)
from .midi import (
    MAX_FILE_BYTES,
    OFFSET,
    ONSET,
    PROMPT_SECONDS,
    Performance,
    check_midi_bytes,
    make_performance,
    merge,
    prompt_window,
    read_midi,
    window_bounds,
    write_midi,
)
from .originality import OriginalityIndex
from .outcomes import (
    SETTINGS_PREFIX,
    CandidateFiles,
    Outcome,
    PassageFiles,
    Preview,
    Result,
    RewriteOutcome,
    rounded,
)
from .pianoroll import PLAYBACK_CURSOR_JS, draw
from .rewrite import Passage, check_span
from .streaming import LiveTake, Stretch, Writing
from .synth import Renderer, audio_seconds, write_wav

# What the app and the command line need besides the studio: the sampling settings, limits,
# bundled checkpoints and what the page runs (the playback cursor, the recorder, the live player).
__all__ = [
    "BUNDLED_CHECKPOINTS",
    "MAX_CANDIDATES",
    "MAX_CONTINUATION_SECONDS",
    "MAX_BATCH",
    "MAX_FILE_BYTES",
    "PLAYBACK_CURSOR_JS",
    "PROMPT_SECONDS",
    "Model",
    "SamplingConfig",
    "Stretch",
    "Studio",
    "player",
    "recorder",
]

log = logging.getLogger(__name__)
CONTEXT_SECONDS = 3.0  # a rewritten passage is heard from this long before it to after it


@dataclass(frozen=True)
class _Request:
    """What a request to write music holds from its start: the model, a fresh folder for its
    files, the notes it shows the person, and when it started."""

    model: Model
    folder: Path
    notes: list[str]
    started: float


class Studio:
    def __init__(
        self,
        models: Model | list[Model],
        output_root: str | Path | None = None,
        max_age_s: float = 3600.0,
    ):
        models = [models] if isinstance(models, Model) else list(models)
        self.models = {m.name: m for m in models}  # the default first
        self.default = models[0]
        root = output_root or Path(tempfile.gettempdir()) / "musicgen-outputs"
        self.output_root = Path(root).resolve()
        self.output_root.mkdir(parents=True, exist_ok=True)
        self.max_age_s = max_age_s
        self._cleanup_lock = threading.Lock()
        self._renderer: Renderer | None = None
        self._renderer_error: MusicgenError | None = None
        self.originality = OriginalityIndex.load()  # None when the index is not installed

    @classmethod
    def load(
        cls,
        checkpoints: list[str | Path] | None = None,
        device: str | None = None,
        output_root: str | Path | None = None,
    ) -> Studio:
        """The given checkpoints; else $MUSICGEN_CHECKPOINT alone when it is set; else every
        bundled checkpoint that is installed, the default (best music) first, then those of
        $MUSICGEN_MODELS (checkpoint or training-run folders, separated by the OS's path
        separator: a model fine-tuned on your own music, served beside the bundled ones)."""
        if not checkpoints:
            installed = [d for d in BUNDLED_CHECKPOINTS if (d / WEIGHTS_FILE).is_file()]
            use_env = os.environ.get("MUSICGEN_CHECKPOINT") or not installed
            more = [p for p in os.environ.get("MUSICGEN_MODELS", "").split(os.pathsep) if p]
            checkpoints = ([None] if use_env else installed) + more
        return cls([Model.load(c, device) for c in checkpoints], output_root)

    # ----- models and audio

    def model(self, name: str | None = None) -> Model:
        """A loaded model by name (None or blank: the default)."""
        if name is None or str(name).strip() == "":
            return self.default
        if name not in self.models:
            raise InvalidParameterError(
                f"Unknown model '{name}': choose one of {', '.join(self.models)}."
            )
        return self.models[name]

    @property
    def device(self) -> str:
        return devices.describe(self.default.device)

    @property
    def renderer(self) -> Renderer:
        """The synthesizer, loaded on first use; raises SynthUnavailableError/SoundfontNotFound."""
        if self._renderer is None and self._renderer_error is None:
            try:
                self._renderer = Renderer(keep_one_ready=True)  # for the live take
            except MusicgenError as exc:
                self._renderer_error = exc
        if self._renderer_error is not None:
            raise self._renderer_error
        return self._renderer

    def audio_available(self) -> tuple[bool, str]:
        try:
            _ = self.renderer
        except MusicgenError as exc:
            return False, str(exc)
        return True, ""

    def _audio(self, perf: Performance, path: Path, notes: list[str]) -> Path | None:
        """A WAV of `perf`, or None (with the reason added to `notes`) without a synthesizer."""
        ok, why = self.audio_available()
        if not ok:
            if f"Audio is off: {why}" not in notes:
                notes.append(f"Audio is off: {why}")
            return None
        return self.renderer.render_wav(perf, path)

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
        """An uploaded file, parsed where a crash cannot take the server down."""
        if path is None or str(path) == "":
            raise InvalidMidiError("Upload a MIDI file or pick an example first.")
        path = Path(path)
        if path.suffix.lower() not in (".mid", ".midi"):
            raise InvalidMidiError("Please upload a .mid or .midi file.")
        return read_midi(path, isolate=True, max_bytes=MAX_FILE_BYTES)

    def save_recording(self, encoded: object) -> tuple[Path, Performance]:
        """A phrase recorded in the page (the MIDI file it wrote, base64) as a prompt file of
        its own, named by the server (recording-<date>-<time>.mid), with its notes: it passes
        every check an upload does, or raises and leaves nothing to use."""
        data = recorder.recording_bytes(encoded)
        check_midi_bytes(data, MAX_FILE_BYTES)
        path = self.new_folder() / time.strftime("recording-%Y%m%d-%H%M%S.mid")
        path.write_bytes(data)
        return path, self.read_prompt(path)

    # ----- requests

    def preview(self, prompt: str | Path | Performance, start=None, end=None) -> Preview:
        perf = prompt if isinstance(prompt, Performance) else self.read_prompt(prompt)
        start, end = _none_if_blank(start), _none_if_blank(end)
        window = prompt_window(perf, start, end)
        window_start, window_end = window_bounds(perf, start, end)
        folder = self.new_folder()
        notes = list(perf.warnings)
        wav = self._audio(window, folder / "prompt.wav", notes)
        roll = folder / "prompt.png"
        draw(window, seconds=audio_seconds(window) if wav else None).save(roll)
        summary = (
            f"File: {perf.duration:.1f} s, {len(perf)} notes. The model hears "
            f"{window_end - window_start:.1f} s ({len(window)} notes)."
        )
        return Preview(window, wav, roll, " ".join([summary, *notes]))

    def span_preview(self, piece: str | Path | Performance, start=None, end=None) -> Path:
        """The passage a rewrite would replace, in context (CONTEXT_SECONDS either side): its
        roll, the span between red markers, its notes in orange. Raises what rewrite would."""
        perf = piece if isinstance(piece, Performance) else self.read_prompt(piece)
        start, end = check_span(perf, _none_if_blank(start), _none_if_blank(end))
        return self._context_roll(perf, start, end, self.new_folder() / "passage.png", seconds=None)

    def _context_roll(self, piece: Performance, start, end, path: Path, seconds) -> Path:
        """The roll of `piece` from CONTEXT_SECONDS before [start, end) to CONTEXT_SECONDS
        after it: the notes struck in the span in orange between red markers."""
        heard_from, heard_to = max(0.0, start - CONTEXT_SECONDS), end + CONTEXT_SECONDS
        onsets = piece.notes[:, ONSET]
        inside = (onsets >= start) & (onsets < end)
        around = _excerpt(make_performance(piece.notes[~inside]), heard_from, heard_to)
        passage = _excerpt(make_performance(piece.notes[inside]), heard_from, heard_to)
        rewritten = (start - heard_from, end - heard_from)
        draw(around, passage, seconds=seconds, rewritten=rewritten, origin=heard_from).save(path)
        return path

    def generate(self, *args, **kwargs) -> Outcome:
        """stream()'s Outcome, without streaming: the same arguments (bar `live`)."""
        *_, outcome = self.stream(*args, live=False, **kwargs)
        return outcome

    def stream(
        self,
        prompt: str | Path | Performance,
        config: SamplingConfig,
        start=None,
        end=None,
        on_progress: Callable[[Progress], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        model: str | None = None,
        audio: bool = True,
        name: str | None = None,
        keep_until: Callable[[], float | None] | None = None,
        live: bool = True,
    ) -> Iterator[Stretch | Outcome]:
        """Continue the prompt window [start, end) of a MIDI file (a path: an upload, parsed
        isolated) or an already parsed performance; every candidate's files in a new folder.
        With `live` (and audio), the first candidate is heard while it is written: Stretches of
        its audio come as they settle, then the Outcome; without, only the Outcome.

        Each candidate's MIDI holds the whole piece so far: the file up to the window's end as
        it was, then the continuation, so continuing a result builds a piece step by step.
        Candidates come best first by the model's own judgement: the closest in log-likelihood
        per note to the prompt's (Continuation.distance_from_prompt).
        Files are named after the piece, the step and the candidate: `name` (or the prompt
        file's name) is `piece` for a new piece, or `piece-stepN-cK` for a step's result.
        `should_stop` ends sampling early (the takes keep what was sampled, or, with
        `keep_until`, what was before the time it gives: what the listener heard). If sampling
        fails midway, the Outcome keeps what was streamed and says what happened."""
        chosen = self.model(model)
        if name is None and not isinstance(prompt, Performance):
            name = Path(str(prompt)).stem
        perf = prompt if isinstance(prompt, Performance) else self.read_prompt(prompt)
        start, end = _none_if_blank(start), _none_if_blank(end)
        window = prompt_window(perf, start, end)
        window_start, window_end = window_bounds(perf, start, end)
        before = make_performance(perf.notes[perf.notes[:, ONSET] < window_end])
        request = self._request(chosen, perf)
        tok = chosen.tokenizer
        origin = continuation_origin(tok, tok.encode(window))
        live_take = None
        if live and audio and self.audio_available()[0]:
            stream_folder = request.folder / "stream"
            live_take = LiveTake(self.renderer, tok, window, origin, config.seconds, stream_folder)
        writing = Writing(live_take, on_progress)
        try:
            yield from writing.follow(
                lambda report: chosen.continue_window(
                    window, config, report, should_stop, keep_until
                )
            )
            continuations = writing.results(
                lambda first, heard: [make_continuation(tok, window, origin, first, heard)]
            )
            if writing.failure:
                request.notes.append(writing.failure)
            stopped = writing.failure is not None or bool(should_stop and should_stop())
            settings = asdict(config) | {
                "checkpoint": chosen.name,
                "decoder": chosen.decoder.name,
                "prompt_start": start,
                "prompt_end": end,
                "prompt_seconds": round(window_end - window_start, 3),
                "generation_seconds": round(time.perf_counter() - request.started, 3),
            }
            results = self._judge(continuations, settings, before, window_start)
            streamed = {}
            if live_take is not None and not stopped:
                streamed = yield from self._finish_live(live_take, results, request.notes)
        finally:
            writing.close()
        heard = keep_until() if stopped and keep_until is not None else None
        yield self._outcome(request, name, results, audio, streamed, stopped, heard)

    def _request(self, chosen: Model, perf: Performance) -> _Request:
        """A new request on a piece: its folder, and the notes it will show (the piece's own
        warnings first)."""
        return _Request(chosen, self.new_folder(), list(perf.warnings), time.perf_counter())

    def _finish_live(
        self, live_take: LiveTake, results: list[Result], notes: list[str]
    ) -> Iterator[Stretch]:
        """The streamed take's last stretch; returns {its rank: its audio as it was heard},
        which becomes its WAV (the same samples a render gives, already made)."""
        first = next(r for r in results if r.settings["batch_row"] == 0)
        yield live_take.finish(first.continuation.combined)
        if len(results) > 1:
            notes.append(f"The take played as it was written is take {first.candidate + 1}.")
        return {first.candidate: live_take.whole_audio()}

    def _outcome(
        self,
        request: _Request,
        name: str | None,
        results: list[Result],
        audio: bool,
        streamed: dict,
        stopped: bool,
        heard: float | None,
    ) -> Outcome:
        """Every take's files, written into the request's folder, and what to show of them."""
        piece, step = take_name(name)
        candidates = [
            self._write(
                request.folder,
                f"{piece}-step{step}",
                r,
                request.notes,
                audio,
                streamed.get(r.candidate),
            )
            for r in results
        ]
        if any(len(r.continuation.added) == 0 for r in results):
            request.notes.append("A candidate added no notes (silence was its continuation).")
        return Outcome(
            candidates,
            results,
            time.perf_counter() - request.started,
            stopped,
            heard,
            devices.describe(request.model.device),
            request.notes,
        )

    def rewrite(
        self,
        piece: str | Path | Performance,
        start,
        end,
        config: SamplingConfig,
        model: str | None = None,
        name: str | None = None,
        audio: bool = True,
        on_progress: Callable[[Progress], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> RewriteOutcome:
        """Rewrite the passage [start, end) (seconds) of a MIDI file (a path, parsed isolated)
        or a parsed performance: config.num_candidates passages, the best MAX_CANDIDATES with
        their files in a new folder, best first. Each passage's MIDI is the whole piece with it
        in place (named `piece-stepN-rK`, the settings embedded); its audio and roll are in
        context, from CONTEXT_SECONDS before the span to CONTEXT_SECONDS after it."""
        chosen = self.model(model)
        if name is None and not isinstance(piece, Performance):
            name = Path(str(piece)).stem
        perf = piece if isinstance(piece, Performance) else self.read_prompt(piece)
        start, end = check_span(perf, _none_if_blank(start), _none_if_blank(end))
        request = self._request(chosen, perf)
        result = chosen.rewrite(perf, start, end, config, on_progress, should_stop).result()
        settings = {
            "rewrite": {"from": round(start, 3), "to": round(end, 3)},
            "temperature": config.temperature,
            "top_k": config.top_k,
            "top_p": config.top_p,
            "seed": config.seed,
            "candidates": config.num_candidates,
            "composer": config.composer,
            "checkpoint": chosen.name,
            "decoder": chosen.decoder.name,
            "original_after_nll_per_note": rounded(result.original.after_nll_per_note),
            "after_notes": result.after_notes,
        }
        piece_name, step = take_name(name)
        files = [
            self._write_passage(request, f"{piece_name}-step{step}", rank, passage, settings, audio)
            for rank, passage in enumerate(result.passages[:MAX_CANDIDATES])
        ]
        if not result.after_notes:
            request.notes.append(
                "Nothing comes after the passage: its candidates are ranked as takes are."
            )
        return RewriteOutcome(
            files,
            result,
            time.perf_counter() - request.started,
            devices.describe(chosen.device),
            request.notes,
        )

    def _write_passage(
        self,
        request: _Request,
        prefix: str,
        rank: int,
        passage: Passage,
        settings: dict,
        audio: bool,
    ) -> PassageFiles:
        """A rewritten passage's files: the whole piece's MIDI, and in context its WAV and roll
        (the passage in orange, the music around it in blue)."""
        settings = settings | {
            "rank": rank,
            "after_nll_per_note": rounded(passage.after_nll_per_note),
            "log_likelihood_per_note": rounded(passage.log_likelihood_per_note),
        }
        stem = request.folder / f"{prefix}-r{rank + 1}"
        text = SETTINGS_PREFIX + json.dumps(settings, sort_keys=True)
        midi = write_midi(passage.piece, stem.with_suffix(".mid"), text)
        start, end = settings["rewrite"]["from"], settings["rewrite"]["to"]
        heard_from = max(0.0, start - CONTEXT_SECONDS)
        context = _excerpt(passage.piece, heard_from, end + CONTEXT_SECONDS)
        wav = self._audio(context, stem.with_suffix(".wav"), request.notes) if audio else None
        seconds = audio_seconds(context) if wav else None
        self._context_roll(passage.piece, start, end, stem.with_suffix(".png"), seconds)
        stem.with_suffix(".json").write_text(json.dumps(settings, indent=2))
        return PassageFiles(rank, midi, wav, stem.with_suffix(".png"), settings)

    def _judge(self, continuations, settings: dict, before: Performance, window_start: float):
        """The takes, best first, each with the piece it makes and its settings."""
        rows = sorted(range(len(continuations)), key=lambda i: _judgement(continuations[i]))
        results = []
        for rank, row in enumerate(rows):
            c = continuations[row]
            copied = self.originality.longest_run(c.added) if self.originality else None
            results.append(
                Result(
                    rank,
                    c,
                    merge(before, c.added, window_start),
                    settings
                    | {
                        "candidate": rank,
                        "batch_row": row,  # with the seed, what reproduces this candidate
                        "log_likelihood_per_note": rounded(c.log_likelihood_per_note),
                        "prompt_log_likelihood_per_note": rounded(c.prompt_log_likelihood_per_note),
                        "distance_from_prompt": rounded(c.distance_from_prompt),
                        "longest_maestro_run": None
                        if copied is None
                        else {"notes": copied.notes, "piece": copied.title},
                    },
                )
            )
        return results

    def _write(
        self,
        folder: Path,
        prefix: str,
        result: Result,
        notes: list[str],
        audio: bool,
        streamed: np.ndarray | None = None,
    ):
        """A take's files; `streamed`: its audio as it was streamed (the same samples a render
        gives, already made)."""
        stem = f"{prefix}-c{result.candidate + 1}"
        midi = write_midi(result.piece, folder / f"{stem}.mid", result.settings_text)
        added = write_midi(
            result.continuation.added, folder / f"{stem}-continuation.mid", result.settings_text
        )
        wav = None
        if streamed is not None:
            wav = folder / f"{stem}.wav"
            write_wav(streamed, wav)
        elif audio:
            wav = self._audio(result.continuation.combined, folder / f"{stem}.wav", notes)
        roll = folder / f"{stem}.png"
        c = result.continuation
        draw(c.prompt, c.added, seconds=audio_seconds(c.combined) if wav else None).save(roll)
        (folder / f"{stem}.json").write_text(json.dumps(result.settings, indent=2))
        return CandidateFiles(wav, midi, added, roll, result.settings)


def _excerpt(perf: Performance, start: float, end: float) -> Performance:
    """The notes struck in [start, end), moved to start at 0, each ending by `end`."""
    notes = perf.notes[(perf.notes[:, ONSET] >= start) & (perf.notes[:, ONSET] < end)].copy()
    notes[:, OFFSET] = np.minimum(notes[:, OFFSET], end)
    notes[:, [ONSET, OFFSET]] -= start
    return make_performance(notes, perf.warnings)


def _judgement(c: Continuation) -> tuple:
    """Sort key, best first: closest to the prompt's level; without a prompt level, the most
    likely; takes without notes last."""
    if c.log_likelihood_per_note is None:
        return (2, 0.0)
    if c.distance_from_prompt is None:
        return (1, -c.log_likelihood_per_note)
    return (0, c.distance_from_prompt)


# A step's file: a take (`-cK`, continuing) or a rewritten passage (`-rK`)
STEP_NAME = re.compile(r"^(?P<piece>.+)-step(?P<step>\d+)-[cr]\d+$")


def take_name(name: str | None) -> tuple[str, int]:
    """(piece, step) for a new result: a step's result `bach-step2-c3` (or `-r3`) gives
    ('bach', 3); any other name starts a piece at step 1 (kept to letters, digits, '-' and '_')."""
    match = STEP_NAME.match(name or "")
    if match:
        return match["piece"], int(match["step"]) + 1
    piece = re.sub(r"[^A-Za-z0-9_-]+", "-", name or "")[:40].strip("-")
    return piece or "piece", 1


def _none_if_blank(value):
    """'Not set' (automatic) is None or a blank string, whatever sends it."""
    if value is None or (isinstance(value, str) and value.strip() == ""):
        return None
    return value
