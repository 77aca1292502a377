"""Gradio's own streamed audio output (gr.Audio(streaming=True): AAC over HLS, needs ffmpeg),
measured before choosing how the studio streams: a bare app whose generator yields 1 s WAV
pieces of the Chopin example at once (no model: transport and encoding only), and headless
Chromium timing each click to the audio element's first `playing` event. Prints JSON.

    python benchmarks/gradio_stream_latency.py [--repeats 4]
"""

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import gradio as gr
from playwright.sync_api import sync_playwright

from musicgen.app_process import free_port
from musicgen.midi import read_midi
from musicgen.synth import SAMPLE_RATE, Renderer, write_wav

ROOT = Path(__file__).resolve().parent.parent
PROMPT = ROOT / "examples" / "chopin-etude-op-10-no-12.mid"
PIECES, GAP_S = 10, 0.5  # 1 s pieces, one every half second: faster than they play


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=4)
    args = parser.parse_args()
    audio = Renderer().render(read_midi(PROMPT))
    folder = Path(tempfile.mkdtemp())
    pieces = []
    for i in range(PIECES):
        pieces.append(folder / f"piece-{i}.wav")
        write_wav(audio[i * SAMPLE_RATE : (i + 1) * SAMPLE_RATE], pieces[-1])

    def stream():
        for piece in pieces:
            yield str(piece)
            time.sleep(GAP_S)

    with gr.Blocks() as ui:
        go = gr.Button("Go", elem_id="go")
        out = gr.Audio(streaming=True, autoplay=True)
        go.click(stream, None, out)
    port = free_port()
    ui.queue().launch(prevent_thread_lock=True, server_port=port, allowed_paths=[str(folder)])
    delays = []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=shutil.which("chromium") or shutil.which("chromium-browser"),
            args=["--headless", "--no-sandbox", "--disable-gpu"],
        )
        page = browser.new_page()
        page.goto(f"http://127.0.0.1:{port}")
        button = page.locator("#go")
        button.wait_for()
        page.evaluate(
            """() => {
            document.addEventListener('playing', () => {
              if (window.playingAt == null) window.playingAt = performance.now(); }, true);
            document.querySelector('#go').addEventListener('click', () => {
              window.clickedAt = performance.now(); window.playingAt = null; }); }"""
        )
        for _ in range(args.repeats):
            button.click()
            try:
                page.wait_for_function("() => window.playingAt != null", timeout=30_000)
                delays.append(round(page.evaluate("window.playingAt - window.clickedAt") / 1e3, 3))
            except Exception:  # never started playing
                delays.append(None)
            page.wait_for_timeout(int(PIECES * GAP_S * 1000) + 1000)  # the stream ends
        browser.close()
    ui.close()
    print(json.dumps({"click_to_playing_s": delays, "gradio": gr.__version__}))


if __name__ == "__main__":
    main()
