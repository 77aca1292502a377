"""Checkpoints: safetensors weights + config.json + tokenizer.json in one folder.

Loading never runs code from a file: weights are safetensors, training state is read with
`torch.load(weights_only=True)`. Everything is written to a temporary name and `os.replace`d, and
a training run's folders are swapped in through a one-line pointer file, so a kill at any moment
leaves the previous checkpoint loadable.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .errors import CheckpointError
from .model import ModelConfig, MusicTransformer
from .tokenizer import PerformanceTokenizer

log = logging.getLogger(__name__)

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
STATE_FILE = "train_state.pt"
REPO_ROOT = Path(__file__).resolve().parent.parent
# The bundled models by their short names (--model NAME, --init-from NAME): the default (best
# music) first, then the fast one.
BUNDLED = {name: REPO_ROOT / "checkpoints" / f"maestro-{name}" for name in ("base", "small")}
BUNDLED_CHECKPOINTS = list(BUNDLED.values())
DEFAULT_CHECKPOINT = BUNDLED_CHECKPOINTS[0]


def atomic_write_bytes(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save_checkpoint(
    directory: str | Path,
    model: MusicTransformer,
    tokenizer: PerformanceTokenizer,
    meta: dict | None = None,
    dtype: torch.dtype = torch.float32,
) -> Path:
    """Write an inference checkpoint (weights, config with `meta`, tokenizer) into `directory`.
    Weights load into float32 whatever `dtype` they were stored in (float16 halves the file)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    model = getattr(model, "module", model)  # unwrap DDP
    model = getattr(model, "_orig_mod", model)  # unwrap torch.compile
    state = {k: v.detach().to("cpu", dtype).contiguous() for k, v in model.state_dict().items()}
    tmp = directory / f".{WEIGHTS_FILE}.tmp"
    save_file(state, str(tmp))
    os.replace(tmp, directory / WEIGHTS_FILE)
    tokenizer.save(directory)
    config = {"model": model.config.to_dict(), **(meta or {})}
    atomic_write_bytes(directory / CONFIG_FILE, json.dumps(config, indent=2).encode())
    return directory


def resolve(directory: str | Path | None) -> Path:
    """The folder holding model.safetensors: the argument (a folder, or a bundled model's short
    name when no such folder exists), $MUSICGEN_CHECKPOINT, or the bundled default. A training
    output folder resolves to its best checkpoint."""
    directory = directory or os.environ.get("MUSICGEN_CHECKPOINT") or DEFAULT_CHECKPOINT
    if str(directory) in BUNDLED and not Path(directory).exists():
        directory = BUNDLED[str(directory)]
    directory = Path(directory)
    if (directory / "best").is_file():  # a training run's output folder
        directory = directory / (directory / "best").read_text().strip()
    if not (directory / WEIGHTS_FILE).is_file():
        raise CheckpointError(
            f"No trained checkpoint is installed at {directory} (no {WEIGHTS_FILE}). "
            "Train one with `python -m musicgen train` or pass --checkpoint DIR."
        )
    return directory


def load_checkpoint(
    directory: str | Path | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> tuple[MusicTransformer, PerformanceTokenizer, dict]:
    """(model in eval mode on `device`, tokenizer, config dict). Raises CheckpointError."""
    directory = resolve(directory)
    try:
        config = json.loads((directory / CONFIG_FILE).read_text())
        model_config = ModelConfig.from_dict(config["model"])
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"{directory / CONFIG_FILE} is missing or invalid: {exc}") from None
    tokenizer = PerformanceTokenizer.load(directory)
    if tokenizer.vocab_size != model_config.vocab_size:
        raise CheckpointError(
            f"Tokenizer and model disagree: the tokenizer has {tokenizer.vocab_size} tokens, "
            f"the model expects {model_config.vocab_size}."
        )
    try:
        state = load_file(str(directory / WEIGHTS_FILE), device="cpu")
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(
            f"{directory / WEIGHTS_FILE} is corrupt or truncated: {exc}"
        ) from None
    model = MusicTransformer(model_config)
    load_weights(model, state, directory)
    model.to(device=device, dtype=dtype).eval()
    return model, tokenizer, config


def load_weights(model: MusicTransformer, state: dict, source: Path) -> None:
    expected = {k: v.shape for k, v in model.state_dict().items()}
    got = {k: v.shape for k, v in state.items() if k != "head.weight"}  # older files: tied copy
    if expected.keys() != got.keys():
        missing, extra = expected.keys() - got.keys(), got.keys() - expected.keys()
        raise CheckpointError(
            f"{source}: weights do not match the config "
            f"(missing {sorted(missing)[:3]}, unexpected {sorted(extra)[:3]})."
        )
    bad = [k for k in expected if tuple(expected[k]) != tuple(got[k])]
    if bad:
        raise CheckpointError(
            f"{source}: wrong shape for {bad[0]}: "
            f"{tuple(got[bad[0]])} instead of {tuple(expected[bad[0]])}."
        )
    model.load_state_dict({k: v for k, v in state.items() if k in expected})


# ---------------------------------------------------------------------------------------------
# Training run folders: step-NNNNNNN/ dirs, and `latest` / `best` pointer files


def save_training_checkpoint(
    out: Path,
    step: int,
    model,
    tokenizer,
    meta: dict,
    train_state: dict,
    is_best: bool,
    keep: int = 2,
) -> Path:
    name = f"step-{step:07d}"
    directory = out / name
    if directory.exists():
        shutil.rmtree(directory)
    save_checkpoint(directory, model, tokenizer, meta)
    tmp = directory / f".{STATE_FILE}.tmp"
    torch.save(train_state, tmp)
    os.replace(tmp, directory / STATE_FILE)
    # Only now is the folder complete: point at it (atomic), then prune old folders.
    atomic_write_bytes(out / "latest", name.encode())
    if is_best:
        atomic_write_bytes(out / "best", name.encode())
    protected = {name, _read_pointer(out, "best")}
    steps = sorted(p.name for p in out.glob("step-*") if p.is_dir())
    for old in steps[:-keep]:
        if old not in protected:
            shutil.rmtree(out / old, ignore_errors=True)
    return directory


def _read_pointer(out: Path, name: str) -> str | None:
    path = out / name
    return path.read_text().strip() if path.is_file() else None


def load_training_state(out: Path) -> tuple[Path, dict] | None:
    """(folder, state dict) of the latest complete checkpoint of a run, or None."""
    name = _read_pointer(out, "latest")
    if name is None:
        return None
    directory = out / name
    try:
        state = torch.load(directory / STATE_FILE, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"Cannot resume from {directory}: {exc}") from None
    return directory, state
