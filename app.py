"""musicgen studio: the Gradio UI. Wiring only; everything it does is in musicgen.service.

python app.py          # http://127.0.0.1:7860 (GRADIO_SERVER_NAME / GRADIO_SERVER_PORT)
"""

from __future__ import annotations

import json
import logging
import os
import random
import threading
from pathlib import Path

import gradio as gr

from musicgen import device as devices
from musicgen.errors import MusicgenError
from musicgen.generate import MAX_CANDIDATES, MAX_SECONDS, SamplingConfig
from musicgen.midi import MAX_FILE_BYTES
from musicgen.pipeline import Studio
from musicgen.service import Service

ROOT = Path(__file__).resolve().parent
EXAMPLES = ROOT / "examples"
# Waiting requests beyond QUEUE_SIZE are refused with a "queue is full" message; CONCURRENCY
# generations run at once. One: torch's intra-op threads already use every core, and two
# generations at once on a 2-core machine oversubscribe it (each gets far slower than half).
QUEUE_SIZE = int(os.environ.get("MUSICGEN_QUEUE_SIZE", "16"))
CONCURRENCY = int(os.environ.get("MUSICGEN_CONCURRENCY", "1"))
PRESETS = {  # name: (temperature, top_k, top_p)
    "Balanced": (1.0, 0, 0.95),
    "Faithful": (0.85, 0, 0.9),
    "Adventurous": (1.15, 0, 0.98),
    "Strict (top-k 20)": (0.9, 20, 1.0),
}
MAX_SEED = 2**31 - 1
NO_STYLE = "(any)"

log = logging.getLogger("musicgen.app")


def load_examples() -> list[dict]:
    index = EXAMPLES / "index.json"
    if not index.is_file():
        return []
    return [e | {"path": str(EXAMPLES / e["file"])} for e in json.loads(index.read_text())]


def example_label(e: dict) -> str:
    return f"{e['composer'].split()[-1]}: {e['title']}"


class StopFlags:
    """Per-session stop requests: the Stop button sets one, the running generation polls it."""

    def __init__(self):
        self._events: dict[str, threading.Event] = {}
        self._lock = threading.Lock()

    def get(self, session: str) -> threading.Event:
        with self._lock:
            return self._events.setdefault(session, threading.Event())


def model_info(service: Service) -> str:
    sizes = [
        f"{name}: {s.parameters / 1e6:.1f} M parameters" for name, s in service.studios.items()
    ]
    return (
        "The first is the default: the best music. The smaller one plays several times faster "
        "on a CPU, with simpler music. (" + "; ".join(sizes) + ")"
    )


def build(service: Service) -> gr.Blocks:
    studio = service.studio
    examples = load_examples()
    stops = StopFlags()
    audio_ok, audio_why = studio.audio_available()
    styles = [NO_STYLE, *studio.composers]
    models = list(service.studios)

    with gr.Blocks(title="musicgen — piano continuation studio", delete_cache=(1800, 3600)) as ui:
        gr.Markdown(
            "# 🎹 musicgen — piano continuation studio\n"
            "Give it a piano MIDI prompt; a Transformer trained on the MAESTRO performances "
            "plays on. Prompt in **blue**, continuation in **orange**."
        )
        with gr.Row():
            with gr.Column(scale=5):
                prompt = gr.File(
                    label="Prompt MIDI (.mid / .midi)",
                    file_types=[".mid", ".midi"],
                    type="filepath",
                )
                with gr.Row():
                    example = gr.Dropdown(
                        [example_label(e) for e in examples],
                        value=None,
                        label="…or pick an example (MAESTRO test split)",
                    )
                    chain = gr.Button("⤷ Continue from the last result", size="sm")
                with gr.Row():
                    prompt_start = gr.Number(
                        label="Prompt from (s)", value=0, minimum=0, info="0: 30 s before 'to'"
                    )
                    prompt_end = gr.Number(
                        label="Prompt to (s)", value=0, minimum=0, info="0: the end of the file"
                    )
                preview_info = gr.Markdown()
                preview_audio = gr.Audio(
                    label="What the model hears",
                    type="filepath",
                    interactive=False,
                    visible=audio_ok,
                )
                preview_roll = gr.Image(
                    label="Prompt window", type="filepath", interactive=False, height=200
                )
            with gr.Column(scale=4):
                preset = gr.Dropdown(list(PRESETS), value="Balanced", label="Preset")
                seconds = gr.Slider(
                    2, MAX_SECONDS, value=20, step=1, label="Seconds of music to add"
                )
                temperature = gr.Slider(0.05, 2.0, value=1.0, step=0.05, label="Temperature")
                with gr.Row():
                    top_k = gr.Slider(0, 200, value=0, step=1, label="Top-k (0 = off)")
                    top_p = gr.Slider(0.05, 1.0, value=0.95, step=0.01, label="Top-p (1 = off)")
                with gr.Row(equal_height=True):
                    seed = gr.Number(
                        value=0, precision=0, minimum=0, maximum=MAX_SEED, label="Seed"
                    )
                    dice = gr.Button("🎲 New seed", size="sm")
                    random_seed = gr.Checkbox(value=False, label="Random seed every time")
                with gr.Row():
                    candidates = gr.Slider(1, MAX_CANDIDATES, value=1, step=1, label="Candidates")
                    style = gr.Dropdown(
                        styles, value=NO_STYLE, label="Composer style", visible=len(styles) > 1
                    )
                model = gr.Dropdown(
                    models,
                    value=models[0],
                    label="Model",
                    info=model_info(service),
                    visible=len(models) > 1,
                )
                with gr.Row():
                    generate = gr.Button("Generate", variant="primary")
                    stop = gr.Button("Stop", variant="stop")
                used_seed = gr.Number(label="Seed used", interactive=False, precision=0)
        info = gr.Markdown(label="Summary")
        outputs = []
        with gr.Row():
            for i in range(MAX_CANDIDATES):
                with gr.Column(visible=i == 0, min_width=320) as column:
                    audio = gr.Audio(
                        label=f"Candidate {i + 1}",
                        type="filepath",
                        interactive=False,
                        visible=audio_ok,
                    )
                    roll = gr.Image(label=f"Piano roll {i + 1}", type="filepath", interactive=False)
                    files = gr.File(
                        label="MIDI: prompt + continuation, continuation only",
                        file_count="multiple",
                        interactive=False,
                    )
                outputs.append((column, audio, roll, files))
        last_result = gr.State(None)  # path of the latest combined MIDI of this session
        gr.Markdown(
            f"Device **{devices.describe(studio.device)}** · "
            + (
                "audio by FluidSynth"
                if audio_ok
                else f"⚠️ {audio_why} MIDI and piano rolls still work."
            )
            + " · Example prompts are excerpts of MAESTRO v3 performances (Hawthorne et al., "
            "2019, CC BY-NC-SA 4.0). Uploads are limited to "
            f"{MAX_FILE_BYTES // 2**20} MB."
        )

        # ----- handlers (thin: call the service, turn its errors into messages)

        def window(start, end):
            """The number boxes show 0 for 'automatic' (see their info lines)."""
            return (start or None), (end or None)

        def show_preview(path, start, end):
            if not path:
                return "", None, None
            try:
                p = service.preview(path, *window(start, end))
            except MusicgenError as exc:
                raise gr.Error(str(exc)) from None
            return p.summary, str(p.wav) if p.wav else None, str(p.roll)

        def pick_example(label):
            match = [e for e in examples if example_label(e) == label]
            return (match[0]["path"], 0, 0) if match else (gr.skip(), gr.skip(), gr.skip())

        def continue_last(path):
            if not path:
                raise gr.Error("Generate something first; then it can be continued.")
            return path, 0, 0

        def apply_preset(name):
            return PRESETS.get(name, PRESETS["Balanced"])

        def run(
            prompt,
            seconds,
            temperature,
            seed,
            top_k=0,
            top_p=0.95,
            candidates=1,
            prompt_start=None,
            prompt_end=None,
            style=NO_STYLE,
            random_seed=False,
            model=None,
            request: gr.Request = None,
            progress=gr.Progress(),  # noqa: B008 (Gradio's idiom)
        ):
            """Continue `prompt` (a MIDI file). Returns, per candidate: WAV, piano roll, and
            MIDI files (prompt + continuation, continuation only); then a summary and the seed
            used."""
            if random_seed:
                seed = random.randint(0, MAX_SEED)
            flag = stops.get(request.session_hash if request else "api")
            flag.clear()
            try:
                config = SamplingConfig(
                    seconds=seconds,
                    temperature=temperature,
                    top_k=top_k,
                    top_p=top_p,
                    seed=seed,
                    num_candidates=candidates,
                    composer=None if style in (None, "", NO_STYLE) else style,
                )
                on_progress = lambda p: progress(  # noqa: E731
                    min(p.seconds / p.target_seconds, 1.0),
                    desc=f"{p.seconds:.1f} / {p.target_seconds:.0f} s of music · "
                    f"{p.tokens_per_second:,.0f} tokens/s",
                )
                outcome = service.generate(
                    prompt,
                    config,
                    *window(prompt_start, prompt_end),
                    on_progress,
                    flag.is_set,
                    model,
                )
            except MusicgenError as exc:
                raise gr.Error(str(exc)) from None
            values = []
            for i in range(MAX_CANDIDATES):
                if i < len(outcome.candidates):
                    c = outcome.candidates[i]
                    values += [
                        gr.Column(visible=True),
                        str(c.wav) if c.wav else None,
                        str(c.roll),
                        [str(c.midi), str(c.continuation_midi)],
                    ]
                else:
                    values += [gr.Column(visible=False), None, None, None]
            first = outcome.candidates[0]
            used = service.model(first.settings["checkpoint"])
            return [*values, outcome.describe(used), first.settings["seed"], str(first.midi)]

        def request_stop(request: gr.Request):
            stops.get(request.session_hash).set()

        # ----- wiring

        window_inputs = [prompt, prompt_start, prompt_end]
        preview_outputs = [preview_info, preview_audio, preview_roll]
        prompt.change(show_preview, window_inputs, preview_outputs, api_name=False)
        prompt_start.submit(show_preview, window_inputs, preview_outputs, api_name=False)
        prompt_end.submit(show_preview, window_inputs, preview_outputs, api_name=False)
        example.change(pick_example, example, [prompt, prompt_start, prompt_end], api_name=False)
        chain.click(continue_last, last_result, [prompt, prompt_start, prompt_end], api_name=False)
        dice.click(lambda: random.randint(0, MAX_SEED), None, seed, api_name=False)
        preset.change(apply_preset, preset, [temperature, top_k, top_p], api_name=False)
        flat_outputs = [component for group in outputs for component in group]
        generate.click(
            run,
            [
                prompt,
                seconds,
                temperature,
                seed,
                top_k,
                top_p,
                candidates,
                prompt_start,
                prompt_end,
                style,
                random_seed,
                model,
            ],
            [*flat_outputs, info, used_seed, last_result],
            api_name="generate",
            concurrency_limit=CONCURRENCY,
            concurrency_id="generate",
        )
        stop.click(request_stop, None, None, api_name=False, queue=False)
    return ui


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("miditok").setLevel(logging.ERROR)
    studios = Studio.load_all()  # MUSICGEN_CHECKPOINT / MUSICGEN_DEVICE honoured
    service = Service(studios, os.environ.get("MUSICGEN_OUTPUTS"))
    ui = build(service)
    ui.queue(max_size=QUEUE_SIZE, default_concurrency_limit=CONCURRENCY)
    ui.launch(
        allowed_paths=[str(service.output_root), str(EXAMPLES)],
        max_file_size=MAX_FILE_BYTES,
        ssr_mode=False,
        show_error=True,
    )


if __name__ == "__main__":
    main()
