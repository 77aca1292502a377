"""A loaded model and the one thread that runs all model work of the process.

Loading, the decoder's start-up measurement and generation all run on the COMPUTE thread, so
PyTorch's thread pool is made once and shared, whichever web-server thread a request came on.
"""

from __future__ import annotations

import contextvars
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path

import torch

from . import device as devices
from .checkpoint import load_checkpoint, resolve
from .decoders import Decoder, choose_decoder
from .generate import Progress, SamplingConfig, continue_performance
from .midi import Performance
from .rewrite import rewrite_passage

log = logging.getLogger(__name__)


class ComputeThread:
    """Runs every model computation of the process on one long-lived thread.

    PyTorch's CPU thread pool (OpenMP) belongs to the thread that calls it. A web server runs
    each request on whichever of its worker threads is free, so each started a pool of its own,
    and on 2 cores the pools slowed each other: decoding was ~1.3x slower than on the thread
    that loaded the model (measured; docs/performance.md). Loading, the decoder's
    start-up measurement and generation all run here instead. A daemon: an interrupted command
    does not wait for a generation to end."""

    NAME = "musicgen-compute"

    def __init__(self):
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        threading.Thread(target=self._serve, name=self.NAME, daemon=True).start()

    def _serve(self) -> None:
        while True:
            future, fn, args = self._jobs.get()
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn(*args))
                except BaseException as exc:  # handed to the caller, whatever it is
                    future.set_exception(exc)

    def submit(self, fn: Callable, *args) -> Future:
        """fn(*args) on the compute thread, in the caller's context (Gradio finds the request's
        progress bar there); jobs queue up one after the other."""
        future: Future = Future()
        self._jobs.put((future, contextvars.copy_context().run, (fn, *args)))
        return future

    def run(self, fn: Callable, *args):
        """fn(*args) on the compute thread, waiting for its result."""
        if threading.current_thread().name == self.NAME:
            return fn(*args)
        return self.submit(fn, *args).result()


COMPUTE = ComputeThread()


@dataclass(frozen=True)
class Model:
    """A loaded checkpoint: weights on a device, its tokenizer, and the decoder it runs with.
    Its work runs on the COMPUTE thread, whoever calls."""

    name: str
    model: torch.nn.Module
    tokenizer: object
    meta: dict
    device: torch.device
    decoder: Decoder
    judge_dtype: torch.dtype  # of the pass that judges rewritten passages (fast_matmul_dtype)

    @classmethod
    def load(cls, checkpoint: str | Path | None = None, device: str | None = None) -> Model:
        return COMPUTE.run(cls._load, checkpoint, device)

    @classmethod
    def _load(cls, checkpoint: str | Path | None, device: str | None) -> Model:
        """Named after its folder (a training run's, not its best step's)."""
        directory = resolve(checkpoint)
        name = directory.name
        if checkpoint is not None and directory.parent == Path(checkpoint):
            name = Path(checkpoint).name  # a training run: its best step's folder inside it
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
        judge_dtype = devices.fast_matmul_dtype(dev)
        return cls(name, model, tokenizer, meta, dev, decoder, judge_dtype)

    @property
    def parameters(self) -> int:
        return self.model.num_params()

    def rewrite(
        self,
        piece: Performance,
        start: float,
        end: float,
        config: SamplingConfig,
        on_progress: Callable[[Progress], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> Future:
        """The passages for [start, end) (rewrite_passage), computed on the compute thread."""
        return COMPUTE.submit(
            rewrite_passage,
            self.model,
            self.tokenizer,
            piece,
            start,
            end,
            config,
            on_progress,
            should_stop,
            self.decoder,
            self.judge_dtype,
            self.reads_cue,
        )

    @property
    def reads_cue(self) -> bool:
        """Trained on windows that read the music after them first (TrainConfig.cue_p): its
        rewrites are written with the music after the span as a cue."""
        return bool(self.meta.get("train", {}).get("cue_p", 0.0))

    def continue_window(
        self,
        window: Performance,
        config: SamplingConfig,
        on_progress: Callable[[Progress], None] | None = None,
        should_stop: Callable[[], bool] | None = None,
        keep_until: Callable[[], float | None] | None = None,
    ) -> Future:
        """The continuations (continue_performance), computed on the compute thread."""
        return COMPUTE.submit(
            continue_performance,
            self.model,
            self.tokenizer,
            window,
            config,
            on_progress,
            should_stop,
            self.decoder,
            keep_until,
        )
