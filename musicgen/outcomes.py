"""What the studio's requests give back: the takes of a continuation and the passages of a
rewrite, each with the files written for it, its settings (also embedded in its MIDI files),
and a summary for the person who asked."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from .generate import Continuation
from .midi import Performance
from .originality import SharedRun
from .rewrite import Rewrite

SETTINGS_PREFIX = "musicgen "  # how a MIDI file's text meta event holds its settings


@dataclass(frozen=True)
class Result:
    candidate: int  # 0-based rank: best first, by the model's own judgement
    continuation: Continuation
    piece: Performance  # the prompt file up to the window's end, then this continuation
    settings: dict  # everything needed to reproduce it, also embedded in the MIDI files

    @property
    def settings_text(self) -> str:
        return SETTINGS_PREFIX + json.dumps(self.settings, sort_keys=True)


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
    results: list[Result]
    seconds_taken: float
    stopped_early: bool
    heard: float | None  # where the listener stopped (seconds into the take), if they did
    device: str
    notes: list[str] = field(default_factory=list)

    def describe(self) -> str:
        c = self.candidates[0].settings
        kept = min(r.continuation.seconds for r in self.results)
        asked = f"{c['seconds']:.0f} s requested"
        if self.stopped_early:
            asked = f"stopped at {kept:.1f} of {c['seconds']:.0f} s (kept what was generated)"
            if self.heard is not None:
                asked = (
                    f"stopped at {kept:.1f} of {c['seconds']:.0f} s added (kept what you heard: "
                    f"{self.heard:.1f} s of the take)"
                )
        lines = [
            f"**{len(self.candidates)} candidate(s)** · seed **{c['seed']}** · {asked} · "
            f"temperature {c['temperature']:g} · top-k {c['top_k'] or 'off'} · "
            f"top-p {c['top_p']:g}" + (f" · style {c['composer']}" if c["composer"] else ""),
            f"Took **{self.seconds_taken:.2f} s** on `{self.device}` with model "
            f"`{c['checkpoint']}` ({c['decoder']})",
        ]
        for take in self.candidates:
            judged = take.settings["log_likelihood_per_note"]
            level = take.settings["prompt_log_likelihood_per_note"]
            distance = take.settings["distance_from_prompt"]
            run = take.settings["longest_maestro_run"]
            line = f"Take {take.settings['candidate'] + 1}: "
            if judged is None:
                line += "no notes"
            elif distance is None:
                line += f"{judged:.2f} nats/note (the model's judgement)"
            else:
                line += (
                    f"{judged:.2f} nats/note, {distance:.2f} from the prompt's "
                    f"{level:.2f} (the model's judgement: the closer, the better)"
                )
            if run is not None:
                line += " · " + SharedRun(run["notes"], run["piece"]).describe()
            lines.append(line)
        return "\n\n".join(lines + self.notes)


@dataclass(frozen=True)
class PassageFiles:
    rank: int  # 0-based, best first
    midi: Path  # the whole piece with this passage in place
    wav: Path | None  # in context: CONTEXT_SECONDS before the span to CONTEXT_SECONDS after
    roll: Path  # the same stretch: the passage in orange
    settings: dict  # also embedded in the MIDI file


@dataclass
class RewriteOutcome:
    passages: list[PassageFiles]
    rewrite: Rewrite
    seconds_taken: float
    device: str
    notes: list[str] = field(default_factory=list)

    def describe(self) -> str:
        r, s = self.rewrite, self.passages[0].settings if self.passages else {}
        original = r.original.after_nll_per_note
        lines = [
            f"**{len(self.passages)} of {s.get('candidates')} passage(s)** for "
            f"{r.start:g}–{r.end:g} s · seed **{s.get('seed')}** · temperature "
            f"{s.get('temperature'):g} · took **{self.seconds_taken:.2f} s** on `{self.device}` "
            f"with `{s.get('checkpoint')}`",
        ]
        if r.after_notes:
            lines.append(
                f"Judged by how likely the model finds the {r.after_notes} notes after the "
                f"passage (nats per note, lower is better): the original passage "
                f"{original:.2f}."
            )
        for files, passage in zip(self.passages, r.passages):
            line = f"Passage {files.rank + 1}: {len(passage.notes)} notes"
            if passage.after_nll_per_note is not None:
                line += f", {passage.after_nll_per_note:.2f} nats per note after it"
            lines.append(line)
        return "\n\n".join(lines + self.notes)


def rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)
