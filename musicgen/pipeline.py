"""The studio: a loaded checkpoint on a device, and the one-way flow
prompt MIDI -> window -> tokens -> model -> tokens -> MIDI -> audio / picture."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from . import device as devices
from .checkpoint import BUNDLED_CHECKPOINTS, WEIGHTS_FILE, load_checkpoint, resolve
from .errors import MusicgenError
from .generate import Continuation, Progress, SamplingConfig, choose_decoder, continue_performance
from .midi import Performance, prompt_window, write_midi
from .pianoroll import draw
from .synth import Renderer

log = logging.getLogger(__name__)
SETTINGS_PREFIX = "musicgen "


@dataclass(frozen=True)
class Result:
    candidate: int
    continuation: Continuation
    settings: dict  # everything needed to reproduce it, also embedded in the MIDI files

    @property
    def settings_text(self) -> str:
        return SETTINGS_PREFIX + json.dumps(self.settings, sort_keys=True)


class Studio:
    def __init__(self, model, tokenizer, meta: dict, device: torch.device, name: str, decoder):
        self.model, self.tokenizer, self.meta = model, tokenizer, meta
        self.device, self.name, self.decoder = device, name, decoder
        self._renderer: Renderer | None = None
        self._renderer_error: MusicgenError | None = None

    @classmethod
    def load(cls, checkpoint: str | Path | None = None, device: str | None = None) -> Studio:
        directory = resolve(checkpoint)
        dev = devices.pick_device(device)
        started = time.perf_counter()
        model, tokenizer, meta = load_checkpoint(directory, dev, devices.inference_dtype(dev))
        decoder = choose_decoder(model)
        log.info(
            "loaded %s on %s in %.2f s, decoding with %s",
            directory.name,
            devices.describe(dev),
            time.perf_counter() - started,
            decoder.name,
        )
        return cls(model, tokenizer, meta, dev, directory.name, decoder)

    @classmethod
    def load_all(cls, device: str | None = None) -> list[Studio]:
        """$MUSICGEN_CHECKPOINT alone when it is set; otherwise every bundled checkpoint that is
        installed, the default (best music) first."""
        if os.environ.get("MUSICGEN_CHECKPOINT"):
            return [cls.load(None, device)]
        installed = [d for d in BUNDLED_CHECKPOINTS if (d / WEIGHTS_FILE).is_file()]
        return [cls.load(d, device) for d in installed] or [cls.load(None, device)]

    @property
    def parameters(self) -> int:
        return self.model.num_params()

    @property
    def composers(self) -> tuple[str, ...]:
        return self.tokenizer.composers

    @property
    def renderer(self) -> Renderer:
        """The synthesizer, loaded on first use; raises SynthUnavailableError/SoundfontNotFound."""
        if self._renderer is None and self._renderer_error is None:
            try:
                self._renderer = Renderer()
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

    def continue_midi(
        self,
        prompt: Performance,
        config: SamplingConfig,
        prompt_start: float | None = None,
        prompt_end: float | None = None,
        on_progress: Callable[[Progress], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> list[Result]:
        window = prompt_window(prompt, prompt_start, prompt_end)
        started = time.perf_counter()
        continuations = continue_performance(
            self.model, self.tokenizer, window, config, on_progress, should_stop, self.decoder
        )
        took = time.perf_counter() - started
        settings = asdict(config) | {
            "checkpoint": self.name,
            "decoder": self.decoder.name,
            "prompt_start": prompt_start,
            "prompt_end": prompt_end,
            "prompt_seconds": round(window.duration, 3),
            "generation_seconds": round(took, 3),
        }
        return [Result(i, c, settings | {"candidate": i}) for i, c in enumerate(continuations)]

    def write_result(
        self,
        result: Result,
        midi_path: str | Path,
        wav: str | Path | None = None,
        continuation_only: str | Path | None = None,
    ) -> None:
        write_midi(result.continuation.combined, midi_path, text=result.settings_text)
        if continuation_only is not None:
            write_midi(
                result.continuation.continuation, continuation_only, text=result.settings_text
            )
        if wav is not None:
            self.renderer.render_wav(result.continuation.combined, wav)

    @staticmethod
    def pianoroll(result: Result, width: int = 1000):
        return draw(result.continuation.prompt, result.continuation.continuation, width)
