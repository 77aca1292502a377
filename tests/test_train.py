"""Training on the fixture MIDI folder with a tiny model: learning, exact resume, DDP, faults."""

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace

import pytest
import torch
from conftest import MIDI_DIR, ROOT

from musicgen.app_process import free_port
from musicgen.checkpoint import STATE_FILE, load_checkpoint, resolve
from musicgen.data import split_window
from musicgen.errors import CheckpointError, InvalidParameterError, MusicgenError
from musicgen.model import ModelConfig
from musicgen.synth import Renderer
from musicgen.train import TrainConfig, Trainer, run, warm_start_model

pytestmark = pytest.mark.slow  # real processes: a server, the CLI, training runs

TINY_MODEL = dict(n_layer=1, n_head=2, n_embd=32, block_size=32)
TINY = dict(
    batch_size=4,
    composers=0,
    warmup_steps=2,
    lr=3e-3,
    min_lr=3e-4,
    eval_every=5,
    eval_batches=1,
    log_every=1,
    sample_seconds=1.0,
)


def config(tmp_path, out="run", **kwargs) -> TrainConfig:
    values = TINY | {"max_steps": 20, "cache_dir": str(tmp_path / "cache")} | kwargs
    model = ModelConfig(**TINY_MODEL | values.pop("model", {}))
    return TrainConfig(data=str(MIDI_DIR), out=str(tmp_path / out), model=model, **values)


def losses(out) -> list[tuple]:
    lines = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    return [(r["step"], r.get("lr"), r.get("loss"), r.get("val_loss")) for r in lines]


def test_training_lowers_the_loss_and_writes_checkpoints(tmp_path):
    cfg = config(tmp_path, max_steps=40, eval_every=20)
    result = run(cfg, resume=False)
    log = losses(tmp_path / "run")
    train = [loss for _, _, loss, _ in log if loss is not None]
    assert sum(train[-5:]) / 5 < sum(train[:5]) / 5 - 0.5
    model, tok, meta = load_checkpoint(tmp_path / "run")  # resolves to the best step
    assert meta["step"] in (20, 40) and result["step"] == 40
    assert (resolve(tmp_path / "run") / "sample.mid").is_file()
    try:  # to hear it too, where FluidSynth is installed
        Renderer()
    except MusicgenError:
        return
    assert (resolve(tmp_path / "run") / "sample.wav").stat().st_size > 44
    assert (
        json.loads((tmp_path / "run" / "log.jsonl").read_text().splitlines()[-1])[
            "val_nll_per_note"
        ]
        > 0
    )


def test_resume_follows_the_uninterrupted_trajectory(tmp_path):
    run(config(tmp_path, "straight"), resume=False)
    run(config(tmp_path, "interrupted", stop_at_step=10), resume=False)
    with pytest.raises(Exception, match="--resume"):
        run(config(tmp_path, "interrupted"), resume=False)  # never silently overwritten
    run(config(tmp_path, "interrupted"), resume=True)
    assert losses(tmp_path / "interrupted") == losses(tmp_path / "straight")


def test_resume_keeps_the_architecture_and_reads_older_runs(tmp_path):
    run(config(tmp_path, stop_at_step=5), resume=False)
    with pytest.raises(CheckpointError, match="different n_layer"):
        run(config(tmp_path, model={"n_layer": 2}), resume=True)
    # a run saved while TrainConfig still declared the architecture flat, at its top level
    state_file = tmp_path / "run" / "step-0000005" / STATE_FILE
    state = torch.load(state_file, weights_only=True)
    state["config"] = {k: v for k, v in state["config"].items() if k != "model"} | TINY_MODEL
    torch.save(state, state_file)
    with pytest.raises(CheckpointError, match="different n_embd"):
        run(config(tmp_path, model={"n_embd": 64}), resume=True)
    assert run(config(tmp_path, stop_at_step=10), resume=True)["step"] == 10
    _, _, meta = load_checkpoint(tmp_path / "run" / "step-0000010")
    assert (
        meta["model"] == ModelConfig(**TINY_MODEL, vocab_size=meta["model"]["vocab_size"]).to_dict()
    )


def warm(tmp_path, out="warm", **kwargs) -> TrainConfig:
    """A run that starts from the tiny run's best checkpoint, whose architecture it takes."""
    changes = kwargs.pop("model", {})
    model = warm_start_model(str(tmp_path / "run"), **changes)
    return replace(config(tmp_path, out, init_from=str(tmp_path / "run"), **kwargs), model=model)


def test_a_warm_start_begins_where_the_checkpoint_is(tmp_path):
    run(config(tmp_path, stop_at_step=10), resume=False)
    trained, _, _ = load_checkpoint(tmp_path / "run")
    cfg = warm(tmp_path, max_steps=4, stop_at_step=2)
    trainer = Trainer(cfg)
    batch = trainer.batch(trainer.train_windows, 0, 0, 0)
    with torch.no_grad():
        _, expected = trained(*split_window(batch, trainer.tokenizer.pad_id))
    trainer.train()
    before, first = losses(tmp_path / "warm")[:2]  # the held-out loss it starts from, then
    assert before[0] == 0 and before[3] > 0  # the first step's
    assert first[0] == 1 and first[2] == pytest.approx(float(expected), abs=1e-4)
    assert first[1] == pytest.approx(cfg.lr / cfg.warmup_steps)  # its own warm-up, from 0
    # the checkpoint records where it started; --resume goes on without reloading it
    assert load_checkpoint(tmp_path / "warm")[2]["started_from"]["step"] == 10
    assert run(replace(cfg, stop_at_step=None), resume=True)["step"] == 4
    assert load_checkpoint(tmp_path / "warm")[2]["started_from"]["step"] == 10


def test_a_warm_start_may_widen_the_window_but_not_the_model(tmp_path):
    run(config(tmp_path, stop_at_step=5), resume=False)
    longer = warm(tmp_path, "longer", max_steps=2, model={"block_size": 64})
    assert run(longer, resume=False)["step"] == 2
    model, _, _ = load_checkpoint(tmp_path / "longer")
    assert model.config.block_size == 64 and model.rope_cos.shape[0] == 64
    wider = warm(tmp_path, "wider", model={"n_embd": 64})
    with pytest.raises(InvalidParameterError, match="n_embd is 32, this run's 64"):
        run(wider, resume=False)
    with pytest.raises(CheckpointError, match="No trained checkpoint"):
        run(config(tmp_path, "nothing", init_from=str(tmp_path / "missing")), resume=False)


def test_a_failed_checkpoint_save_leaves_the_previous_one(tmp_path, monkeypatch):
    run(config(tmp_path, stop_at_step=5), resume=False)
    calls = {"n": 0}
    real_save = torch.save

    def dying_save(obj, path, *a, **k):  # the process "dies" while writing train state
        calls["n"] += 1
        real_save(obj, path, *a, **k)
        raise KeyboardInterrupt("killed during checkpoint save")

    monkeypatch.setattr("musicgen.checkpoint.torch.save", dying_save)
    with pytest.raises(KeyboardInterrupt):
        run(config(tmp_path, stop_at_step=10), resume=True)
    monkeypatch.undo()
    assert (tmp_path / "run" / "latest").read_text() == "step-0000005"
    load_checkpoint(tmp_path / "run" / "step-0000005")
    result = run(config(tmp_path), resume=True)  # and the run goes on from step 5
    assert result["step"] == 20


def train_command(tmp_path, out, **overrides) -> list[str]:
    args = [
        sys.executable,
        "-m",
        "musicgen",
        "train",
        "--data",
        str(MIDI_DIR),
        "--out",
        str(tmp_path / out),
        "--cache-dir",
        str(tmp_path / "cache"),
    ]
    for key, value in (TINY_MODEL | TINY | overrides).items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    return args


ENV = dict(os.environ, PYTHONPATH=str(ROOT), OMP_NUM_THREADS="1")


def test_kill_9_then_resume(tmp_path):
    command = train_command(tmp_path, "run", max_steps=400, eval_every=10)
    proc = subprocess.Popen(command, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while not (tmp_path / "run" / "latest").is_file() and time.time() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # somewhere in the next steps, or inside a save
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    latest = (tmp_path / "run" / "latest").read_text()
    load_checkpoint(tmp_path / "run" / latest)  # whatever was happening, it loads
    target = int(latest.removeprefix("step-")) + 10
    resumed = subprocess.run(
        [*command, "--resume", "--stop-at-step", str(target)],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert json.loads(resumed.stdout.strip().splitlines()[-1])["step"] == target


def test_ddp_two_processes_on_cpu(tmp_path):
    command = train_command(tmp_path, "ddp", max_steps=6, device="cpu")
    torchrun = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--master_port",
        str(free_port()),
    ]
    proc = subprocess.run(
        torchrun + command[1:], env=ENV, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    _, _, meta = load_checkpoint(tmp_path / "ddp" / "step-0000006")
    assert meta["world_size"] == 2
    assert meta["tokens_seen"] == 6 * 2 * TINY["batch_size"] * TINY_MODEL["block_size"]


def test_a_trained_run_is_served_beside_the_bundled_models(tmp_path, monkeypatch):
    """MUSICGEN_MODELS=runs/mine make demo: the run is in the studio's model list, by its
    folder's name; a run trained with cues (cue_p) writes its rewrites after one."""
    from musicgen.studio import Studio

    run(config(tmp_path, stop_at_step=5, cue_p=0.5), resume=False)
    monkeypatch.setenv("MUSICGEN_MODELS", str(tmp_path / "run"))
    monkeypatch.delenv("MUSICGEN_CHECKPOINT", raising=False)
    studio = Studio.load(output_root=tmp_path / "outputs")
    assert list(studio.models) == ["maestro-base", "maestro-small", "run"]
    assert studio.model("run").meta["step"] == 5
    assert studio.model("run").reads_cue and not studio.model("maestro-small").reads_cue


def test_fine_tuning_a_small_folder_gets_settings_sized_to_it(tmp_path):
    """train --init-from MODEL --data FOLDER with no other flag: a low learning rate, a short
    warm-up, a few passes over the folder, evaluations and early stopping; the flags given win;
    a folder too small to hold one out is refused by name."""
    from musicgen.cli import build_parser
    from musicgen.finetune import LR, MIN_STEPS, PATIENCE
    from musicgen.train import config_from_args

    run(config(tmp_path, stop_at_step=5), resume=False)
    flags = ["train", "--out", str(tmp_path / "mine"), "--cache-dir", str(tmp_path / "cache")]
    flags += ["--init-from", str(tmp_path / "run"), "--data", str(MIDI_DIR)]
    cfg = config_from_args(build_parser().parse_args(flags))
    assert cfg.lr == LR and cfg.min_lr == LR / 10 and cfg.patience == PATIENCE
    assert cfg.max_steps == MIN_STEPS and 0 < cfg.warmup_steps <= cfg.max_steps // 10
    assert cfg.eval_every == cfg.max_steps // 10 and cfg.model.block_size == 32
    given = config_from_args(build_parser().parse_args([*flags, "--lr", "3e-4"]))
    assert given.lr == 3e-4 and given.max_steps == cfg.max_steps
    two = tmp_path / "two"
    two.mkdir()
    for f in sorted(MIDI_DIR.glob("*.mid"))[:2]:
        (two / f.name).write_bytes(f.read_bytes())
    flags[flags.index(str(MIDI_DIR))] = str(two)
    with pytest.raises(MusicgenError, match="at least 3 files"):
        config_from_args(build_parser().parse_args(flags))


def test_early_stopping_keeps_the_best_checkpoint(tmp_path):
    run(config(tmp_path, stop_at_step=5), resume=False)
    # far too high a learning rate: the validation loss climbs, and the run stops
    cfg = warm(tmp_path, max_steps=60, eval_every=2, patience=2, lr=3.0, min_lr=1.0)
    result = run(cfg, resume=False)
    # (step 0: the model it starts from, validated and kept as a checkpoint before training)
    vals = [(s, v) for s, _, _, v in losses(tmp_path / "warm") if v is not None]
    assert result["step"] < 60 and len(vals) >= 3
    best = min(vals, key=lambda sv: sv[1])
    assert vals[-1][0] == result["step"] and [v for _, v in vals[-2:]] > [best[1]] * 2
    # (the starting weights are a checkpoint too: here none after them was better)
    assert best[0] == 0 and (tmp_path / "warm" / "best").read_text() == "step-0000000"
    assert load_checkpoint(tmp_path / "warm")[2]["step"] == 0
    # its model card: what it started from and learned on, before and at its best
    card = (tmp_path / "warm" / "README.md").read_text()
    assert f"`{tmp_path / 'run'}` fine-tuned on `{MIDI_DIR.name}`" in card
    assert "| before fine-tuning (step 0) |" in card
    assert "| best checkpoint: the starting weights (no later one was better" in card
    assert f"MUSICGEN_MODELS={tmp_path / 'warm'} make demo" in card
