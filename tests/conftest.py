"""Shared fixtures: real MIDI excerpts (tests/fixtures/midi) and a tiny random-weight checkpoint.

The tiny model is for testing the machinery (shapes, caching, determinism, decoding), never
presented as music.
"""

import shutil
from pathlib import Path

import pytest
import torch

from musicgen.app_process import running_app
from musicgen.checkpoint import load_checkpoint, save_checkpoint
from musicgen.model import ModelConfig, MusicTransformer
from musicgen.tokenizer import PerformanceTokenizer

ROOT = Path(__file__).resolve().parent.parent

FIXTURES = ROOT / "tests" / "fixtures"
MIDI_DIR = FIXTURES / "midi"
ARTIFACTS = ROOT / "test-artifacts"

# Tiny models gain nothing from threads, and oversubscribed cores (a server or a training run
# beside the tests) make every op wait: one thread keeps the suite fast and steady.
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def midi_files() -> list[Path]:
    files = sorted(MIDI_DIR.glob("*.mid"))
    assert len(files) >= 4
    return files


@pytest.fixture(scope="session")
def tokenizer() -> PerformanceTokenizer:
    return PerformanceTokenizer.create(("Bach", "Chopin", "Other"))


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory, tokenizer) -> Path:
    torch.manual_seed(0)
    config = ModelConfig(
        vocab_size=tokenizer.vocab_size, block_size=64, n_layer=2, n_head=2, n_embd=32
    )
    directory = tmp_path_factory.mktemp("tiny-checkpoint")
    save_checkpoint(directory, MusicTransformer(config), tokenizer, {"note": "random weights"})
    return directory


@pytest.fixture()
def tiny_model(tiny_checkpoint):
    model, tokenizer, _ = load_checkpoint(tiny_checkpoint)
    return model, tokenizer


@pytest.fixture(scope="session")
def artifacts() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def app(tiny_checkpoint, tmp_path_factory):
    """The app served by a real process (on the tiny model): (url, process)."""
    with running_app(tiny_checkpoint, tmp_path_factory.mktemp("app-outputs")) as (url, proc):
        yield url, proc


@pytest.fixture(scope="session")
def browser():
    """Headless Chromium (Debian's), driven by Playwright."""
    playwright = pytest.importorskip("playwright.sync_api")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Chromium is not installed (Debian package `chromium`)")
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=chromium,
            args=[
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        try:
            yield browser
        finally:
            browser.close()
