"""How decoding steps run, and which one a machine uses.

A Decoder is the step the sampler calls once per token: PyTorch's own (eager, or compiled on a
static cache for CUDA graphs) or the whole step as one int8 ONNX Runtime call (onnx_step.py).
On a CPU the faster of PyTorch float32 and int8 ONNX Runtime is measured once per machine and
model, and remembered: machines differ, so measure, do not assume.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from . import device as devices
from . import onnx_step
from .errors import InvalidParameterError
from .model import MusicTransformer

log = logging.getLogger(__name__)

DECODER_SETTINGS = ("auto", "torch", "onnx-int8", "torch-compiled")
DECODER_CHOICES = "decoder-choices.json"  # under the cache root: each machine's measured choice


@dataclass(frozen=True)
class Decoder:
    """How decoding steps run: step(idx (B, 1), position (1,), cache) -> logits (B, vocab);
    prefill(idx (B, T), cache, every_position=False) -> logits, as MusicTransformer.prefill
    (None: the model's own); extend_each(idx (B, T), start, one-row cache) -> logits
    (B, T, vocab), each row after the same cached prefix (None: the model's extend on a cache
    copied per row); and whether the cache it needs is static (see KVCache)."""

    name: str
    step: Callable
    static_cache: bool = False
    prefill: Callable | None = None
    extend_each: Callable | None = None


def torch_decoder(model: MusicTransformer, compile_step: bool = False) -> Decoder:
    """The model's own decode_step, eager on a dynamic cache (the fastest eager path on CPUs and,
    measured on an H100, on GPUs too), or compiled with torch.compile on a static cache, whose
    fixed shapes let CUDA graphs replay the step (mode "reduce-overhead")."""
    if not compile_step:
        return Decoder("torch-eager", model.decode_step)
    mode = "reduce-overhead" if model.embed.weight.device.type == "cuda" else None
    step = torch.compile(model.decode_step, mode=mode, fullgraph=True, dynamic=False)
    return Decoder("torch-compiled", step, static_cache=True)


def onnx_decoder(model: MusicTransformer, weights: str = "int8") -> Decoder:
    """The model's step, and its prefill, as one ONNX Runtime call each with int8 weights
    (onnx_step.py), for float32 CPU models."""
    engine = onnx_step.OnnxDecoder(model, weights)
    # The prefill quantizes a whole window's activations with one scale (dynamic int8): on
    # maestro-base, +0.0006 +- 0.0004 nats/token on the prefilled positions, and the steps
    # after it +0.0007 +- 0.0003 against +0.0004 +- 0.0002 after PyTorch's
    # (benchmarks/decoder_nll.py; the music: docs/performance.md).
    return Decoder(
        f"onnx-{weights}", engine, prefill=engine.prefill, extend_each=engine.extend_each
    )


def choose_decoder(model: MusicTransformer, setting: str | None = None) -> Decoder:
    """The decoder a studio uses: $MUSICGEN_DECODER or `setting` ("torch", "onnx-int8",
    "torch-compiled"), else by measurement: on a CPU with ONNX Runtime installed, the faster of
    PyTorch float32 and ONNX Runtime int8 over a few steps (machines differ: measure, do not
    assume); elsewhere PyTorch eager."""
    setting = setting or os.environ.get("MUSICGEN_DECODER") or "auto"
    if setting not in DECODER_SETTINGS:
        raise InvalidParameterError(
            f"Unknown decoder '{setting}': choose one of {', '.join(DECODER_SETTINGS)}."
        )
    cpu = model.embed.weight.device.type == "cpu"
    if setting == "torch" or (setting == "auto" and (not cpu or not onnx_step.available())):
        return torch_decoder(model)
    if setting == "torch-compiled":
        return torch_decoder(model, compile_step=True)
    if not cpu:
        raise InvalidParameterError("The ONNX Runtime decoders run on the CPU only.")
    if setting != "auto":
        return onnx_decoder(model, setting.removeprefix("onnx-"))
    try:
        candidates = [torch_decoder(model), onnx_decoder(model)]
    except Exception as exc:  # an ONNX Runtime without the operators the graph needs, say
        log.warning("decoder: no onnx-int8 (the graph could not be built: %s)", exc)
        return torch_decoder(model)
    # Measured once per machine and model, then remembered: two paths within a few per cent
    # of each other could flip from one launch to the next, and with them the music a seed
    # gives (each path samples slightly other notes).
    choices = devices.cache_root() / DECODER_CHOICES
    key = " | ".join(
        (
            candidates[1].step.key,  # the model's, as the engine hashed it
            devices.cpu_name(),
            devices.describe(model.embed.weight.device),
            f"torch {torch.__version__}",
            f"onnxruntime {onnx_step.version()} {onnx_step.OnnxDecoder.GRAPH}",
        )
    )
    by_name = {d.name: d for d in candidates}
    remembered = _read_json(choices).get(key)
    if remembered in by_name:
        log.info("decoder: %s (measured before on this machine: %s)", remembered, choices)
        return by_name[remembered]
    timed = {d: _seconds_per_step(model, d) for d in candidates}
    log.info("decoder: %s", ", ".join(f"{d.name} {t * 1e3:.1f} ms/step" for d, t in timed.items()))
    chosen = min(timed, key=timed.get)
    _write_json(choices, _read_json(choices) | {key: chosen.name})
    return chosen


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def _write_json(path: Path, value: dict) -> None:
    """Best effort (a read-only home only means measuring again next time)."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(value, indent=1))
        os.replace(tmp, path)
    except OSError as exc:
        log.warning("could not remember the decoder choice in %s: %s", path, exc)


@torch.inference_mode()
def _seconds_per_step(model: MusicTransformer, decoder: Decoder, steps=8) -> float:
    cached = min(256, model.config.block_size // 2)
    x = torch.zeros(1, cached + steps, dtype=torch.long, device=model.embed.weight.device)
    cache = model.new_cache(1, decoder.static_cache)
    (decoder.prefill or model.prefill)(x[:, :cached], cache)
    times = []
    for i in range(cached, cached + steps):
        started = time.perf_counter()
        decoder.step(x[:, i : i + 1], torch.tensor([i]), cache)
        times.append(time.perf_counter() - started)
    return float(np.median(times[2:]))
