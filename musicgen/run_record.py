"""What a training run leaves in its folder besides the weights' state: the log (log.jsonl, one
JSON line per logged step and per validation), at every checkpoint a short continuation of a
validation prompt (sample.mid, and sample.wav where FluidSynth is installed), to hear how
training goes, and for a fine-tuning run its model card (README.md): what it started from, the
folder's pieces, the settings, the held-out files' NLL per note before and after.

A resumed run drops the log lines written after the checkpoint it resumes from: it writes them
again on its way, so the log reads as one uninterrupted run.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from .errors import MusicgenError
from .generate import SamplingConfig, sample
from .midi import write_midi
from .model import MusicTransformer
from .synth import Renderer
from .tokenizer import PerformanceTokenizer

log = logging.getLogger(__name__)

LOG_FILE = "log.jsonl"
CARD_FILE = "README.md"
CARD_PIECES = 40  # pieces named on a card (the rest counted)
SAMPLE_FILE = "sample.mid"
SAMPLE_PROMPT_TOKENS = 256  # the start of the first validation piece


class RunRecord:
    def __init__(self, out: Path):
        self.log_path = Path(out) / LOG_FILE

    def log(self, record: dict) -> None:
        with open(self.log_path, "a") as f:
            f.write(json.dumps(record) + "\n")

    def forget_after(self, step: int) -> None:
        """Drop the log lines of steps after `step` (a resumed run redoes them)."""
        if self.log_path.is_file():
            lines = [
                ln
                for ln in self.log_path.read_text().splitlines()
                if ln.strip() and json.loads(ln)["step"] <= step
            ]
            self.log_path.write_text("".join(ln + "\n" for ln in lines))

    def validations(self) -> list[dict]:
        """The log's validation lines, in order."""
        if not self.log_path.is_file():
            return []
        lines = (json.loads(ln) for ln in self.log_path.read_text().splitlines() if ln.strip())
        return [r for r in lines if "val_nll_per_note" in r]

    def write_card(
        self,
        started_from: dict,
        data: str,
        pieces: dict[str, list[str]],
        settings: dict,
        how: str,
    ) -> None:
        """The fine-tuned run's model card, README.md in its folder (rewritten at every
        checkpoint: it always tells where the run stands)."""
        out = self.log_path.parent
        checks = self.validations()
        before = next((r for r in checks if r["step"] == 0), None)
        best = min(checks, key=lambda r: r["val_loss"], default=None)
        rows = []
        if before:
            rows.append(f"| before fine-tuning (step 0) | {before['val_nll_per_note']:.3f} |")
        if best is not None and best is before:
            rows.append(
                "| best checkpoint: the starting weights (no later one was better on the "
                "held-out pieces; the run serves them) | **{:.3f}** |".format(
                    best["val_nll_per_note"]
                )
            )
        elif best is not None:
            change = ""
            if before:
                ratio = best["val_nll_per_note"] / before["val_nll_per_note"] - 1
                change = f" ({ratio:+.1%})"
            rows.append(
                f"| best checkpoint (step {best['step']}, the one served) "
                f"| **{best['val_nll_per_note']:.3f}**{change} |"
            )
        if checks and checks[-1] is not best and checks[-1] is not before:
            rows.append(
                f"| latest (step {checks[-1]['step']}) | {checks[-1]['val_nll_per_note']:.3f} |"
            )
        named = pieces["train"][:CARD_PIECES]
        more = len(pieces["train"]) - len(named)
        card = [
            f"# {out.name}: `{started_from['checkpoint']}` fine-tuned on `{Path(data).name}`",
            "",
            f"Started from `{started_from['checkpoint']}` (its step {started_from.get('step')}), "
            f"fine-tuned on the MIDI folder `{Path(data).name}`: {len(pieces['train'])} "
            f"piece(s) to learn from, {len(pieces['validation'])} held out to watch it "
            f"(chosen by a hash of each path). {how}",
            "",
            "| | the held-out pieces, NLL per note (lower: the model expects them better) |",
            "| --- | --- |",
            *rows,
            "",
            "Settings: " + ", ".join(f"{k} {v}" for k, v in settings.items()) + ". The folder's "
            "pieces train under the style token Other (the model's token for composers it has "
            "no token of).",
            "",
            "Play it: `MUSICGEN_MODELS=" + str(out) + " make demo` adds it to the studio's model "
            f'list as "{out.name}"; `python -m musicgen generate PROMPT.mid -o OUT.mid '
            f"--checkpoint {out}` continues a file with it. Each checkpoint folder holds a "
            "sample continuation (sample.mid, sample.wav) of a held-out piece.",
            "",
            "The pieces learned from: "
            + ", ".join(f"`{Path(p).name}`" for p in named)
            + (f", and {more} more." if more > 0 else "."),
            "",
            "Licence: the weights carry the licences of the music they were trained on (the "
            f"starting model's: MAESTRO's CC BY-NC-SA 4.0; and those of `{Path(data).name}`).",
        ]
        tmp = out / f".{CARD_FILE}.tmp"
        tmp.write_text("\n".join(card) + "\n")
        tmp.replace(out / CARD_FILE)

    @staticmethod
    def write_sample(
        directory: Path,
        model: MusicTransformer,
        tokenizer: PerformanceTokenizer,
        prompt: np.ndarray,
        seconds: float,
        step: int,
    ) -> None:
        """A continuation of `prompt` (token ids), `seconds` long, into directory/sample.mid."""
        was_training = model.training
        model.eval()
        cont = sample(model, tokenizer, prompt, SamplingConfig(seconds=seconds, seed=0))[0].ids
        perf = tokenizer.decode(np.concatenate([prompt, cont]))
        if len(perf):
            write_midi(perf, directory / SAMPLE_FILE, text=f"step {step}")
            try:
                Renderer().render_wav(perf, (directory / SAMPLE_FILE).with_suffix(".wav"))
            except MusicgenError as exc:  # no synthesizer here: the MIDI file is the sample
                log.debug("no sample.wav: %s", exc)
        model.train(was_training)
