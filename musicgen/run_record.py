"""What a training run leaves in its folder besides the weights' state: the log (log.jsonl, one
JSON line per logged step and per validation), and at every checkpoint a short continuation of a
validation prompt (sample.mid, and sample.wav where FluidSynth is installed), to hear how
training goes.

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
