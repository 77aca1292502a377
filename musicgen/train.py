"""Training: AdamW, warmup + cosine, clipping, accumulation, mixed precision, DDP, resume.

Batches are a pure function of (seed, rank, step) and the RNG state is checkpointed, so
`--resume` after a kill continues the exact trajectory of an uninterrupted run. Checkpoints are
step folders made current through an atomically replaced pointer file (see checkpoint.py).
Runs unchanged under `torchrun --nproc_per_node=N` (gloo on CPU, nccl on GPUs).
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import time
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from safetensors.torch import load_file
from tqdm import tqdm

from . import device as devices
from .checkpoint import (
    CONFIG_FILE,
    WEIGHTS_FILE,
    load_checkpoint,
    load_training_state,
    load_weights,
    resolve,
    save_training_checkpoint,
)
from .data import SPLITS, WindowSampler, build_cache, list_pieces, split_window, top_composers
from .errors import CheckpointError, InvalidParameterError
from .finetune import folder_settings
from .model import ModelConfig, MusicTransformer
from .run_record import SAMPLE_PROMPT_TOKENS, RunRecord
from .tokenizer import PerformanceTokenizer

log = logging.getLogger(__name__)

WARMUP_STEPS = 200  # the default warm-up of a run of at least 2,000 steps
ARCHITECTURE = ("n_layer", "n_head", "n_embd", "block_size")  # a resumed run must keep these


@dataclass(frozen=True)
class TrainConfig:
    data: str
    out: str
    model: ModelConfig = field(default_factory=ModelConfig)  # vocab_size: from the tokenizer
    composers: int = 12  # most frequent composers as style tokens (0: none)
    composer_p: float = 0.5  # probability a training window carries its composer token
    # optimisation
    batch_size: int = 16
    grad_accum: int = 1
    lr: float = 1e-3
    min_lr: float = 1e-4
    warmup_steps: int | None = None  # None: WARMUP_STEPS, or a tenth of a shorter run
    max_steps: int = 3000
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    seed: int = 1234
    augment: bool = True
    velocity_shift: int = 0  # with augment: move all velocities by up to this many bins
    # Share of training windows that read the music after them first, as a cue (data.with_cue):
    # what lets a model's rewrites write toward the music after the span (rewrite.py).
    cue_p: float = 0.0
    # bookkeeping
    eval_every: int = 250
    eval_batches: int = 8
    log_every: int = 10
    device: str | None = None
    compile: bool = False
    cache_dir: str | None = None
    max_files: int | None = None  # for quick experiments
    time_limit_min: float | None = None  # stop (with a checkpoint) after this wall time
    stop_at_step: int | None = None  # stop (with a checkpoint) here; --resume continues
    sample_seconds: float = 10.0  # length of the sample continuation written per checkpoint
    # A trained model to start from (a bundled one's short name or a checkpoint folder): its
    # weights and tokenizer, with this run's own optimizer, warm-up and schedule. The
    # architecture must be the checkpoint's (see warm_start_model); the window may differ.
    init_from: str | None = None
    # Stop after this many evaluations without a better validation loss (the best checkpoint
    # is kept); 0: never. Fine-tuning on a small folder sets it (finetune.py).
    patience: int = 0

    def __post_init__(self):
        positive = (
            "batch_size",
            "grad_accum",
            "max_steps",
            "eval_every",
            "eval_batches",
            "log_every",
        )
        for name in positive:
            if getattr(self, name) < 1:
                raise InvalidParameterError(f"{name} must be at least 1")
        if self.velocity_shift < 0 or self.patience < 0:
            raise InvalidParameterError("velocity_shift and patience must be at least 0")
        if not 0 <= self.cue_p <= 1 or not 0 <= self.composer_p <= 1:
            raise InvalidParameterError("cue_p and composer_p must be between 0 and 1")
        if not 0 < self.min_lr <= self.lr:
            raise InvalidParameterError("need 0 < min_lr <= lr")
        if self.warmup_steps is None:
            object.__setattr__(self, "warmup_steps", min(WARMUP_STEPS, self.max_steps // 10))
        if not 0 <= self.warmup_steps <= self.max_steps:
            raise InvalidParameterError(
                f"--warmup-steps ({self.warmup_steps}) must be between 0 and --max-steps "
                f"({self.max_steps})."
            )


def learning_rate(step: int, cfg: TrainConfig) -> float:
    """Linear warmup, then cosine decay to min_lr at max_steps."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    progress = (step - cfg.warmup_steps) / max(1, cfg.max_steps - cfg.warmup_steps)
    return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * min(progress, 1.0)))


class Trainer:
    """A run: set up from its config (or the checkpoint it resumes from), then `train()`.
    The loop is `train()` and `_step()`; the run's folder (checkpoints, log, samples) is
    written by `_evaluate_and_save()` through checkpoint.py and RunRecord."""

    def __init__(self, cfg: TrainConfig):
        self.cfg = cfg
        self.out = Path(cfg.out)
        self.record = RunRecord(self.out)
        self._join_processes()
        self.dtype = devices.train_dtype(self.device)
        torch.manual_seed(cfg.seed)
        resumed = load_training_state(self.out) if (self.out / "latest").is_file() else None
        # A resumed run has the warm start's weights in its own checkpoint already.
        start = load_checkpoint(cfg.init_from) if cfg.init_from and not resumed else None
        self._load_data(resumed[0] if resumed else None, start[1] if start else None)
        self._build_model()
        self.step, self.best_val, self.tokens_seen, self.train_seconds = 0, float("inf"), 0, 0.0
        self.started_from: dict | None = None  # the warm start's checkpoint, for the ledger
        self.since_best = 0  # evaluations since the best validation loss (early stopping)
        if resumed is not None:
            self._restore(*resumed)
        elif start is not None:
            self._warm_start(*start)
        self._wrap_model()

    # ----- set-up, in order

    def _join_processes(self) -> None:
        """Rank, world size and device; under torchrun, the process group (nccl on GPUs)."""
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.is_main = self.rank == 0
        self.device = devices.pick_device(self.cfg.device)
        if self.world > 1:
            if self.device.type == "cuda":
                self.device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
                torch.cuda.set_device(self.device)
            if not dist.is_initialized():
                dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")

    def _load_data(self, resumed: Path | None, start: PerformanceTokenizer | None) -> None:
        """The tokenizer (a resumed run's own, or the warm start's: never re-derived from code),
        the token cache (rank 0 tokenizes, the others then read it) and the window samplers."""
        cfg = self.cfg
        if resumed is not None:
            self.tokenizer = PerformanceTokenizer.load(resumed)
        elif start is not None:
            self.tokenizer = start
        else:
            composers = top_composers(list_pieces(cfg.data), cfg.composers) if cfg.composers else ()
            self.tokenizer = PerformanceTokenizer.create(composers)
        if self.world > 1 and not self.is_main:
            dist.barrier()
        cache = build_cache(cfg.data, self.tokenizer, cfg.cache_dir, max_files=cfg.max_files)
        if self.world > 1 and self.is_main:
            dist.barrier()
        block = cfg.model.block_size
        self.train_windows = WindowSampler(
            cache,
            "train",
            self.tokenizer,
            block,
            cfg.augment,
            cfg.composer_p,
            cfg.velocity_shift,
            cfg.cue_p,
        )
        self.val_windows = WindowSampler(
            cache, "validation", self.tokenizer, block, augment=False, composer_p=0.0
        )
        pieces = cache.pieces("validation")
        # the held-out files' tokens per note: a validation loss per token, read per note
        self.tokens_per_note = sum(p["length"] for p in pieces) / max(
            sum(p["notes"] for p in pieces), 1
        )
        self.pieces = {split: [p["path"] for p in cache.pieces(split)] for split in SPLITS}
        prompt = cache.piece_tokens(pieces[0]) if pieces else np.zeros(0, dtype=np.int64)
        self.sample_prompt = np.asarray(prompt[:SAMPLE_PROMPT_TOKENS], dtype=np.int64)

    def _build_model(self) -> None:
        """The model, AdamW (weight decay on matrices only) and the fp16 gradient scaler."""
        cfg = self.cfg
        self.model_config = cfg.model.with_vocab(self.tokenizer.vocab_size)
        self.model = MusicTransformer(self.model_config).to(self.device)
        decay = [p for n, p in self.model.named_parameters() if p.dim() >= 2]
        no_decay = [p for n, p in self.model.named_parameters() if p.dim() < 2]
        self.optimizer = torch.optim.AdamW(
            [
                {"params": decay, "weight_decay": cfg.weight_decay},
                {"params": no_decay, "weight_decay": 0.0},
            ],
            lr=cfg.lr,
            betas=(0.9, 0.95),
            fused=self.device.type == "cuda",
        )
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.dtype == torch.float16)

    def _wrap_model(self) -> None:
        """What the training step calls: the model, compiled and/or in DDP."""
        self.net = self.model
        if self.cfg.compile:
            self.net = torch.compile(self.net)
        if self.world > 1:
            self.net = torch.nn.parallel.DistributedDataParallel(
                self.net, device_ids=[self.device.index] if self.device.type == "cuda" else None
            )

    # ----- state

    def _restore(self, directory: Path, state: dict) -> None:
        saved_cfg = state["config"]
        # Runs saved before TrainConfig held a ModelConfig kept the architecture at the top level.
        saved_model = saved_cfg.get("model") or saved_cfg
        must_match = [(k, saved_model, self.cfg.model) for k in ARCHITECTURE] + [
            ("composers", saved_cfg, self.cfg)
        ]
        for key, saved, current in must_match:
            was = saved.get(key, getattr(type(current), key))  # older runs: the default then
            if was != getattr(current, key):
                raise CheckpointError(
                    f"--resume with a different {key} ({getattr(current, key)}) than the run "
                    f"in {self.out} ({was})."
                )
        for key in ("max_steps", "batch_size", "lr", "min_lr", "warmup_steps", "grad_accum"):
            if saved_cfg.get(key) != getattr(self.cfg, key):  # allowed, but no longer exact
                log.warning(
                    "resuming with %s=%s (was %s): the trajectory changes from here",
                    key,
                    getattr(self.cfg, key),
                    saved_cfg.get(key),
                )
        load_weights(self.model, load_file(str(directory / WEIGHTS_FILE)), directory)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["torch_rng"])
        self.step, self.best_val = state["step"], state["best_val"]
        self.tokens_seen, self.train_seconds = state["tokens_seen"], state["train_seconds"]
        self.started_from = state.get("started_from")
        self.since_best = state.get("since_best", 0)
        if self.is_main:
            log.info("resumed from %s at step %d", directory, self.step)
            self.record.forget_after(self.step)

    def _warm_start(self, model: MusicTransformer, tokenizer, meta: dict) -> None:
        """The trained model's weights in this run's model (its rotary tables are this run's
        window's, built from the config), after checking that they fit."""
        ours, theirs = self.model_config, model.config
        for key in ("n_layer", "n_head", "n_embd", "rope_base", "vocab_size"):
            if getattr(ours, key) != getattr(theirs, key):
                raise InvalidParameterError(
                    f"--init-from {self.cfg.init_from}: its {key} is {getattr(theirs, key)}, "
                    f"this run's {getattr(ours, key)}. A warm start keeps the model's "
                    "architecture and tokenizer (only --block-size and --dropout may change)."
                )
        self.model.load_state_dict(model.state_dict())
        self.started_from = {
            "checkpoint": self.cfg.init_from,
            "step": meta.get("step"),
            "tokens_seen": meta.get("tokens_seen"),
        }
        if self.is_main:
            log.info(
                "warm start from %s (step %s, window %d -> %d)",
                self.cfg.init_from,
                meta.get("step"),
                theirs.block_size,
                ours.block_size,
            )

    def _state(self) -> dict:
        """What --resume needs to continue exactly: optimizer, scaler, RNG and counters."""
        return {
            "config": asdict(self.cfg),
            "optimizer": self.optimizer.state_dict(),
            "scaler": self.scaler.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "step": self.step,
            "best_val": self.best_val,
            "tokens_seen": self.tokens_seen,
            "train_seconds": self.train_seconds,
            "started_from": self.started_from,
            "since_best": self.since_best,
        }

    def _meta(self, val_loss: float) -> dict:
        """What the checkpoint's config.json says of its training."""
        return {
            # the architecture is the checkpoint's "model" section, with its vocab_size
            "train": asdict(self.cfg)
            | {"data": Path(self.cfg.data).name, "out": None, "model": None},
            "step": self.step,
            "tokens_seen": self.tokens_seen,
            "train_seconds": round(self.train_seconds, 1),
            "val_loss": val_loss,
            "device": devices.describe(self.device),
            "world_size": self.world,
            "started_from": self.started_from,
        }

    # ----- loop

    def batch(self, sampler: WindowSampler, step: int, micro: int, rank: int) -> torch.Tensor:
        seed = self.cfg.seed + 7919 * micro
        array = sampler.batch(self.cfg.batch_size, seed, rank, step)
        return torch.from_numpy(array).to(self.device, non_blocking=True)

    @torch.no_grad()
    def validate(self) -> float:
        self.model.eval()
        losses = []
        for i in range(self.cfg.eval_batches):
            batch = self.batch(self.val_windows, i, 0, 0)  # same windows every time
            with devices.autocast(self.device, self.dtype):
                _, loss = self.model(*split_window(batch, self.tokenizer.pad_id))
                losses.append(loss.item())
        self.model.train()
        return float(np.mean(losses))

    def train(self) -> dict:
        cfg = self.cfg
        if self.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            log.info(
                "model: %.2fM parameters on %s",
                self.model.num_params() / 1e6,
                devices.describe(self.device),
            )
        if self.started_from is not None and self.step == 0:
            # Where the warm start begins, kept as a checkpoint: if no later one beats it on
            # the held-out files (a small folder, a learning rate too high), it stays the best,
            # and the run serves the model it started from rather than a worse one.
            self._evaluate_and_save()
        self.model.train()
        tokens_per_step = cfg.batch_size * cfg.model.block_size * cfg.grad_accum * self.world
        started = time.perf_counter()
        run_start_seconds = self.train_seconds
        bar = tqdm(
            total=cfg.max_steps,
            initial=self.step,
            disable=not self.is_main,
            desc="training",
            unit="step",
            mininterval=2.0,
        )
        loss, stop = float("nan"), False
        while self.step < cfg.max_steps and not stop:
            t0 = time.perf_counter()
            lr = learning_rate(self.step, cfg)
            loss, grad_norm = self._step(lr)
            self.step += 1
            self.tokens_seen += tokens_per_step
            tok_s = tokens_per_step / (time.perf_counter() - t0)
            self.train_seconds = run_start_seconds + time.perf_counter() - started
            bar.update(1)
            bar.set_postfix(loss=f"{loss:.3f}", lr=f"{lr:.1e}", tok_s=f"{tok_s:,.0f}")
            if self.is_main and (self.step % cfg.log_every == 0 or self.step == 1):
                self.record.log(
                    {
                        "step": self.step,
                        "lr": lr,
                        "loss": round(loss, 5),
                        "grad_norm": round(grad_norm, 4),
                        "tokens_per_s": round(tok_s),
                        "tokens_seen": self.tokens_seen,
                        "elapsed_s": round(self.train_seconds, 1),
                    }
                )
            out_of_time = bool(cfg.time_limit_min) and (
                self.train_seconds - run_start_seconds > cfg.time_limit_min * 60
            )
            stop = out_of_time or (cfg.stop_at_step is not None and self.step >= cfg.stop_at_step)
            if self.step % cfg.eval_every == 0 or self.step == cfg.max_steps or stop:
                stop = self._evaluate_and_save() or stop
        bar.close()
        if self.world > 1:
            dist.barrier()
        return {"step": self.step, "loss": loss, "best_val": self.best_val}

    def _step(self, lr: float) -> tuple[float, float]:
        """One optimisation step at learning rate `lr`: grad_accum micro-batches (DDP syncs
        the gradients on the last), clipping, AdamW. -> (loss, averaged over the processes;
        the gradient's norm before clipping)."""
        cfg = self.cfg
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        total = 0.0
        for micro in range(cfg.grad_accum):
            batch = self.batch(self.train_windows, self.step, micro, self.rank)
            sync = micro == cfg.grad_accum - 1 or self.world == 1
            no_sync = self.world > 1 and not sync
            with self.net.no_sync() if no_sync else contextlib.nullcontext():
                with devices.autocast(self.device, self.dtype):
                    _, loss = self.net(*split_window(batch, self.tokenizer.pad_id))
                    loss = loss / cfg.grad_accum
                self.scaler.scale(loss).backward()
            total += loss.item()
        self.scaler.unscale_(self.optimizer)
        grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.optimizer.zero_grad(set_to_none=True)
        if self.world > 1:
            reduced = torch.tensor([total], device=self.device)
            dist.all_reduce(reduced)
            total = reduced.item() / self.world
        return total, float(grad_norm)

    def _write_card(self) -> None:
        cfg = self.cfg
        names = ("lr", "min_lr", "warmup_steps", "max_steps", "eval_every", "patience")
        settings = {k: getattr(cfg, k) for k in names} | {
            "batch_size": cfg.batch_size * cfg.grad_accum * self.world,
            "block_size": cfg.model.block_size,
        }
        trained = (
            f"Trained for {self.step} steps, {self.train_seconds / 60:.1f} min on "
            f"{devices.describe(self.device)}."
        )
        self.record.write_card(self.started_from, cfg.data, self.pieces, settings, trained)

    def _log_validation(self, val: float) -> None:
        per_note = val * self.tokens_per_note
        self.record.log(
            {"step": self.step, "val_loss": round(val, 5), "val_nll_per_note": round(per_note, 4)}
        )
        log.info(
            "step %d: validation loss %.4f nats/token, %.3f nats/note", self.step, val, per_note
        )

    def _evaluate_and_save(self) -> bool:
        """Validate, log, and write a checkpoint with its sample (rank 0; the others wait).
        -> whether to stop early (cfg.patience evaluations without a better loss)."""
        stop = torch.zeros(1, device=self.device)
        if self.is_main:
            val = self.validate()
            self._log_validation(val)
            is_best = val < self.best_val
            self.best_val = min(self.best_val, val)
            self.since_best = 0 if is_best else self.since_best + 1
            if self.cfg.patience and self.since_best >= self.cfg.patience:
                log.info(
                    "stopping early: %d evaluations without a better validation loss (the best "
                    "checkpoint is kept)",
                    self.since_best,
                )
                stop[0] = 1
            directory = save_training_checkpoint(
                self.out,
                self.step,
                self.model,
                self.tokenizer,
                self._meta(val),
                self._state(),
                is_best,
            )
            self.record.write_sample(
                directory,
                self.model,
                self.tokenizer,
                self.sample_prompt,
                self.cfg.sample_seconds,
                self.step,
            )
            if self.started_from is not None:
                self._write_card()
        if self.world > 1:
            dist.broadcast(stop, 0)  # (rank 0's word, for every process)
        return bool(stop.item())


def config_from_args(args) -> TrainConfig:
    """A TrainConfig from the command's flags: the architecture flags (--n-layer, ...) fill its
    ModelConfig (over the warm start's, with --init-from), the others its own fields; a flag not
    given keeps the dataclass default."""
    given = {k: v for k, v in vars(args).items() if v is not None}
    model_names = {f.name for f in fields(ModelConfig)} - {"vocab_size"}
    train_names = {f.name for f in fields(TrainConfig)} - {"model"}
    architecture = {k: v for k, v in given.items() if k in model_names}
    if given.get("init_from"):
        if "composers" in given:
            raise InvalidParameterError(
                "--composers with --init-from: a warm start keeps the model's tokenizer and "
                "its style tokens."
            )
        model = warm_start_model(given["init_from"], **architecture)
        batch = given.get("batch_size", TrainConfig.batch_size)
        settings = folder_settings(
            given["init_from"],
            given["data"],
            batch,
            model.block_size,
            given.get("cache_dir"),
            given.get("max_files"),
        )
        given = settings | given  # the flags given win
        log.info(
            "fine-tuning %s on %s: %s (the folder's pieces train under the style token "
            "Other; every value can be set with its flag)",
            given["init_from"],
            given["data"],
            ", ".join(f"{k}={given[k]}" for k in settings),
        )
    else:
        model = ModelConfig(**architecture)
    return TrainConfig(model=model, **{k: v for k, v in given.items() if k in train_names})


def warm_start_model(init_from: str, **changes) -> ModelConfig:
    """The architecture of a trained model (a bundled one's short name or a checkpoint folder),
    with `changes` (a longer block_size, another dropout): what `init_from` trains on."""
    directory = resolve(init_from)
    saved = json.loads((directory / CONFIG_FILE).read_text())["model"]
    return replace(ModelConfig.from_dict(saved), **changes)


def run(cfg: TrainConfig, resume: bool) -> dict:
    out = Path(cfg.out)
    if (out / "latest").is_file() and not resume:
        raise InvalidParameterError(
            f"{out} already holds a training run: pass --resume to continue it, "
            "or choose another --out."
        )
    trainer = Trainer(cfg)
    try:
        return trainer.train()
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
