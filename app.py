"""musicgen studio: the Gradio UI. Wiring only; everything it does is in musicgen.studio.

python app.py          # http://127.0.0.1:7860 (GRADIO_SERVER_NAME / GRADIO_SERVER_PORT)
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr

from musicgen.errors import MusicgenError
from musicgen.studio import (
    MAX_BATCH,
    MAX_CANDIDATES,
    MAX_CONTINUATION_SECONDS,
    MAX_FILE_BYTES,
    PLAYBACK_CURSOR_JS,
    PROMPT_SECONDS,
    SamplingConfig,
    Stretch,
    Studio,
    player,
    recorder,
)

ROOT = Path(__file__).resolve().parent
EXAMPLES = ROOT / "examples"
# Waiting requests beyond QUEUE_SIZE are refused with a "queue is full" message; CONCURRENCY
# generations run at once. One: the decoder's threads already use every core, and two
# generations at once on a 2-core machine oversubscribe it (each gets far slower than half).
QUEUE_SIZE = int(os.environ.get("MUSICGEN_QUEUE_SIZE", "16"))
CONCURRENCY = int(os.environ.get("MUSICGEN_CONCURRENCY", "1"))
DEFAULTS = SamplingConfig()
PRESETS = {  # name: (temperature, top_k, top_p)
    "Balanced": (DEFAULTS.temperature, DEFAULTS.top_k, DEFAULTS.top_p),
    "Faithful": (0.85, 0, 0.9),
    "Adventurous": (1.15, 0, 0.98),
    "Strict (top-k 20)": (0.9, 20, 1.0),
}
MAX_SEED = 2**31 - 1
# An audio player and the roll it belongs to share a column of this class: the playback
# cursor (PLAYBACK_CURSOR_JS) follows the browser's own <audio> element, which Gradio uses
# instead of its waveform player when the waveform is off.
PLAYABLE = ["musicgen-playable"]
NATIVE_PLAYER = gr.WaveformOptions(show_recording_waveform=False)
PROGRESS_EVERY_S = 0.5
NO_STYLE = "(any)"

log = logging.getLogger("musicgen.app")


def load_examples() -> list[dict]:
    index = EXAMPLES / "index.json"
    if not index.is_file():
        return []
    return [e | {"path": str(EXAMPLES / e["file"])} for e in json.loads(index.read_text())]


def example_label(e: dict) -> str:
    return f"{e['composer'].split()[-1]}: {e['title']}"


@dataclass
class StopRequest:
    """A Stop for one running generation; `heard`: the seconds of the take the listener had
    heard when they pressed it (the take is cut there), None when nothing was playing."""

    event: threading.Event = field(default_factory=threading.Event)
    heard: float | None = None


class StopFlags:
    """Stop requests of the generations running now, one per session: the Stop button sets it,
    the generation polls it. An entry lives only while its generation runs."""

    def __init__(self):
        self._requests: dict[str, StopRequest] = {}
        self._lock = threading.Lock()

    def begin(self, session: str) -> StopRequest:
        with self._lock:
            self._requests[session] = request = StopRequest()
            return request

    def end(self, session: str) -> None:
        with self._lock:
            self._requests.pop(session, None)

    def stop(self, session: str, heard: float | None = None) -> None:
        with self._lock:
            if session in self._requests:
                request = self._requests[session]
                if isinstance(heard, int | float) and math.isfinite(heard) and heard >= 0:
                    request.heard = float(heard)
                request.event.set()

    def __len__(self) -> int:
        return len(self._requests)


def _check_range(name: str, value, minimum, maximum) -> None:
    """Out-of-range API values are refused with the parameter's name and range (Gradio's own
    message, "Value 50 is greater than maximum value 2.0.", names neither)."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise gr.Error(f"{name} must be a number (got {value!r}).", print_exception=False)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        bounds = (
            f"between {minimum:g} and {maximum:g}"
            if minimum is not None and maximum is not None
            else f"at least {minimum:g}"
            if minimum is not None
            else f"at most {maximum:g}"
        )
        raise gr.Error(f"{name} must be {bounds} (got {value:g}).", print_exception=False)


def named(component, param: str):
    """`component` (a slider or number box) with its API values range-checked under `param`'s
    name. (Set on the instance: a subclass of a Gradio component makes Gradio write a .pyi stub
    beside this file at every start.)"""
    gradio_preprocess = component.preprocess

    def preprocess(payload):
        _check_range(param, payload, component.minimum, component.maximum)
        return gradio_preprocess(payload)

    component.preprocess = preprocess
    return component


def seconds_box(label: str, placeholder: str, param: str) -> gr.Number:
    """A time in seconds where blank means automatic: a placeholder says what (an empty Number
    box without one shows 0); API values range-checked under `param`'s name."""
    return named(gr.Number(label=label, value=None, minimum=0, placeholder=placeholder), param)


def throttled(report, every_s: float = PROGRESS_EVERY_S):
    """`report` at most every `every_s`: each Gradio progress update costs the generation
    thread real time (it was about half of the click-to-audio time at one per 16 tokens)."""
    last = [-math.inf]

    def on_progress(p):
        now = time.monotonic()
        if now - last[0] >= every_s:
            last[0] = now
            report(p)

    return on_progress


def user_error(exc: MusicgenError) -> gr.Error:
    """A mistake of the user's (a bad file, a value out of range): one log line, no traceback."""
    log.info("refused: %s", exc)
    return gr.Error(str(exc), print_exception=False)


@dataclass
class Controls:
    """The input components, in the order the API endpoint takes them."""

    prompt: gr.File
    seconds: gr.Slider
    temperature: gr.Slider
    seed: gr.Number
    top_k: gr.Slider
    top_p: gr.Slider
    candidates: gr.Slider
    prompt_start: gr.Number
    prompt_end: gr.Number
    style: gr.Dropdown
    random_seed: gr.Checkbox
    model: gr.Dropdown

    def inputs(self) -> list:
        return list(vars(self).values())


def model_info(studio: Studio) -> str:
    sizes = [f"{name}: {m.parameters / 1e6:.1f} M parameters" for name, m in studio.models.items()]
    return (
        "The first is the default: the best music. The smaller one plays several times faster "
        "on a CPU, with simpler music. (" + "; ".join(sizes) + ")"
    )


def prompt_panel(examples: list[dict], audio_ok: bool):
    """Upload / example / chaining, the prompt window and its preview."""
    prompt = gr.File(
        label="Prompt MIDI (.mid / .midi)",
        file_types=[".mid", ".midi"],
        type="filepath",
        elem_id="prompt-file",
    )
    with gr.Row():
        example = gr.Dropdown(
            [example_label(e) for e in examples],
            value=None,
            label="…or pick an example (MAESTRO test split)",
        )
        undo = gr.Button("↶ Undo the last continue", size="sm", interactive=False)
    played = gr.HTML(
        html_template=recorder.HTML,
        css_template=recorder.CSS,
        js_on_load=recorder.JS,
        label="…or play it: record a phrase, and it becomes the prompt",
        show_label=True,
        container=True,
        elem_id="recorder",
        **recorder.page_limits(),
    )
    with gr.Row():
        auto = f"auto: {PROMPT_SECONDS:g} s before the end"
        start = seconds_box("Prompt from (s)", auto, "prompt_start")
        end = seconds_box("Prompt to (s)", "auto: the end", "prompt_end")
    info = gr.Markdown()
    with gr.Column(elem_classes=PLAYABLE):
        audio = gr.Audio(
            label="What the model hears",
            type="filepath",
            interactive=False,
            visible=audio_ok,
            waveform_options=NATIVE_PLAYER,
        )
        roll = gr.Image(label="Prompt window", type="filepath", interactive=False, height=320)
    return prompt, example, played, undo, start, end, (info, audio, roll)


def settings_panel(studio: Studio):
    styles = [NO_STYLE, *studio.default.tokenizer.composers]
    models = list(studio.models)
    preset = gr.Dropdown(list(PRESETS), value="Balanced", label="Preset")
    seconds = named(
        gr.Slider(
            2,
            MAX_CONTINUATION_SECONDS,
            value=DEFAULTS.seconds,
            step=1,
            label="Seconds of music to add",
        ),
        "seconds",
    )
    temperature = named(
        gr.Slider(0.05, 2.0, value=DEFAULTS.temperature, step=0.05, label="Temperature"),
        "temperature",
    )
    with gr.Row():
        top_k = named(
            gr.Slider(0, 200, value=DEFAULTS.top_k, step=1, label="Top-k (0 = off)"), "top_k"
        )
        top_p = named(
            gr.Slider(0.05, 1.0, value=DEFAULTS.top_p, step=0.01, label="Top-p (1 = off)"),
            "top_p",
        )
    with gr.Row(equal_height=True):
        seed = named(
            gr.Number(value=DEFAULTS.seed, precision=0, minimum=0, maximum=MAX_SEED, label="Seed"),
            "seed",
        )
        dice = gr.Button("🎲 New seed", size="sm")
        random_seed = gr.Checkbox(value=False, label="Random seed every time")
    with gr.Row():
        candidates = named(
            gr.Slider(1, MAX_CANDIDATES, value=1, step=1, label="Candidates"), "candidates"
        )
        style = gr.Dropdown(styles, value=NO_STYLE, label="Composer style", visible=len(styles) > 1)
    model = gr.Dropdown(
        models, value=models[0], label="Model", info=model_info(studio), visible=len(models) > 1
    )
    return (
        preset,
        dice,
        (seconds, temperature, seed, top_k, top_p, candidates, style, random_seed, model),
    )


FAVOURITE = " (the model's favourite)"
# What a slot of each kind says: its audio, its roll, its MIDI files, its button (K: 1-based).
SLOT_LABELS = {
    "take": (
        "Take {K}",
        "Piano roll {K}",
        "MIDI: the whole piece so far, the continuation alone",
        "⤷ Continue from take {K}",
    ),
    "passage": (
        "Passage {K} in context",
        "Passage {K}",
        "MIDI: the whole piece with it",
        "✓ Keep passage {K}",
    ),
}


def result_slots(audio_ok: bool, kind: str) -> list[tuple]:
    """A column per take (or passage), two a row (2 x 2 for four): each roll wide enough to
    read; the first is the model's favourite."""
    heard, drawn, files_label, button = SLOT_LABELS[kind]
    slots = []
    for first in range(0, MAX_CANDIDATES, 2):
        with gr.Row():
            for i in range(first, min(first + 2, MAX_CANDIDATES)):
                with gr.Column(visible=False, min_width=420, elem_classes=PLAYABLE) as column:
                    audio = gr.Audio(
                        label=heard.format(K=i + 1)
                        + (" (the model's favourite)" if i == 0 else ""),
                        elem_id=f"{kind}-{i + 1}-audio",
                        type="filepath",
                        interactive=False,
                        visible=audio_ok,
                        waveform_options=NATIVE_PLAYER,
                    )
                    roll = gr.Image(label=drawn.format(K=i + 1), type="filepath", interactive=False)
                    files = gr.File(
                        label=files_label,
                        file_count="multiple" if kind == "take" else "single",
                        interactive=False,
                    )
                    chosen = gr.Button(button.format(K=i + 1), size="sm")
                slots.append(((column, audio, roll, files), chosen))
    return slots


def rewrite_panel(audio_ok: bool):
    """Rewrite a passage of the piece (the prompt file, or a take made the piece by "Continue
    from take K"): the span, how many to try, and a slot per passage offered."""
    with gr.Accordion("✎ Rewrite a passage of the piece", open=False, elem_id="rewrite"):
        gr.Markdown(
            "Write new music for a stretch of the piece in the prompt box: candidates carry on "
            "from the music before it, and the model judges which lead best into the music "
            "after it. Everything outside the passage stays as it was. Temperature, seed and "
            "model are the settings above."
        )
        with gr.Row():
            start = seconds_box("Passage from (s)", "auto: 4 s before its end", "start")
            end = seconds_box("Passage to (s)", "auto: the end", "end")
            tries = named(
                gr.Slider(2, MAX_BATCH, value=8, step=1, label="Passages to try"), "candidates"
            )
        span_info = gr.Markdown()
        span_roll = gr.Image(
            label="The passage to rewrite, in context", type="filepath", interactive=False,
            height=260, elem_id="passage-preview",
        )  # fmt: skip
        button = gr.Button("Rewrite", variant="primary", elem_id="rewrite-button")
        info = gr.Markdown()
        slots = result_slots(audio_ok, "passage")
        details = gr.JSON(label="Passages, best first: settings and the model's judgement")
    return start, end, tries, (span_info, span_roll), button, info, slots, details


class Handlers:
    """What the page's events do: thin calls into the studio, its errors turned into messages."""

    def __init__(self, studio: Studio, examples: list[dict]):
        self.studio, self.examples = studio, examples
        self.stops = StopFlags()

    def parse_once(self, path, parsed):
        """The upload's notes, parsed (in a child process) once per file and session."""
        if parsed is not None and parsed[0] == path:
            return parsed
        return path, self.studio.read_prompt(path)

    def show_preview(self, path, start, end, parsed):
        """The window the model will hear. A mistake (a bad file, a window outside it) is said
        here, beside the fields at fault, and replaced as soon as they are right: while "12" is
        typed, "1" is briefly before the start, which is no reason for a pop-up or a red
        badge."""
        if not path:
            return "", None, None, None
        try:
            parsed = self.parse_once(path, parsed)
            p = self.studio.preview(parsed[1], start, end)
        except MusicgenError as exc:
            log.info("refused: %s", exc)
            return f"⚠️ **{exc}**", None, None, None
        return p.summary, str(p.wav) if p.wav else None, str(p.roll), parsed

    def show_span(self, path, start, end, parsed):
        """The passage a rewrite would replace, marked on its roll; a mistake in the span is
        said here, as the prompt window's is."""
        if not path:
            return "", None, None
        try:
            parsed = self.parse_once(path, parsed)
            roll = self.studio.span_preview(parsed[1], start, end)
        except MusicgenError as exc:
            return f"⚠️ **{exc}**", None, parsed
        return "", str(roll), parsed

    def pick_example(self, label):
        match = [e for e in self.examples if example_label(e) == label]
        return (match[0]["path"], None, None) if match else (gr.skip(), gr.skip(), gr.skip())

    def use_recording(self, event: gr.EventData):
        """A phrase played in the page becomes the prompt, as an upload would (the page said
        already when there was nothing to record)."""
        try:
            path, _ = self.studio.save_recording(getattr(event, "midi", None))
        except MusicgenError as exc:
            raise user_error(exc) from None
        return str(path), None, None

    @staticmethod
    def continue_take(i, takes, prompt, history):
        """Take i (the whole piece so far) becomes the prompt, continued from its end. (Its
        button shows only once take i exists.)"""
        if i >= len(takes):  # (pressed while a take is still being written)
            return gr.skip(), gr.skip(), gr.skip(), history, gr.skip()
        history = [*history, prompt]
        return takes[i], None, None, history, gr.Button(interactive=True)

    @staticmethod
    def undo_continue(history):
        """The prompt before the last continue. (The button is off while there is none.)"""
        if not history:
            return gr.skip(), gr.skip(), gr.skip(), history, gr.Button(interactive=False)
        return history[-1], None, None, history[:-1], gr.Button(interactive=len(history) > 1)

    def run(
        self,
        prompt,
        seconds,
        temperature,
        seed,
        top_k=DEFAULTS.top_k,
        top_p=DEFAULTS.top_p,
        candidates=DEFAULTS.num_candidates,
        prompt_start=None,
        prompt_end=None,
        style=NO_STYLE,
        random_seed=False,
        model=None,
        parsed=None,
        request: gr.Request = None,
        progress=gr.Progress(),  # noqa: B008 (Gradio's idiom)
    ):
        """Continue `prompt` (a MIDI file). While the first take is written, partial outputs
        carry it in the first slot: its audio a stretch at a time (numbered WAV files that add
        up to the take's), its roll so far. Then, per candidate: WAV, piano roll, and MIDI
        files (prompt + continuation, continuation only); a summary and the seed used."""
        if random_seed:
            seed = random.randint(0, MAX_SEED)
        session = request.session_hash if request else "api"
        stop = self.stops.begin(session)
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
            on_progress = throttled(
                lambda p: progress(
                    min(p.seconds / p.target_seconds, 1.0),
                    desc=f"{p.seconds:.1f} / {p.target_seconds:.0f} s of music · "
                    f"{p.tokens_per_second:,.0f} tokens/s",
                )
            )
            parsed = self.parse_once(prompt, parsed)
            for item in self.studio.stream(
                parsed[1],
                config,
                prompt_start,
                prompt_end,
                on_progress,
                stop.event.is_set,
                model,
                name=Path(prompt).stem,
                keep_until=lambda: stop.heard,
            ):
                if isinstance(item, Stretch):
                    yield streamed_outputs(item, seed, parsed)
                else:
                    outcome = item
        except MusicgenError as exc:
            raise user_error(exc) from None
        finally:
            self.stops.end(session)
        yield final_outputs(outcome, parsed)

    def rewrite(
        self,
        piece,
        start=None,
        end=None,
        candidates=8,
        temperature=DEFAULTS.temperature,
        seed=DEFAULTS.seed,
        model=None,
        parsed=None,
        progress=gr.Progress(),  # noqa: B008 (Gradio's idiom)
    ):
        """Rewrite [start, end) of `piece` (a MIDI file; blank: the last 4 s): per passage
        offered, best first, its audio and roll in context and the whole piece's MIDI; then
        every passage's settings and judgement, and a summary."""
        try:
            config = SamplingConfig(temperature=temperature, seed=seed, num_candidates=candidates)
            on_progress = throttled(
                lambda p: progress(
                    min(p.seconds / p.target_seconds, 1.0),
                    desc=f"{p.tokens_per_second:,.0f} tokens/s",
                )
            )
            parsed = self.parse_once(piece, parsed)
            outcome = self.studio.rewrite(
                parsed[1], start, end, config, model, name=Path(piece).stem,
                on_progress=on_progress,
            )  # fmt: skip
        except MusicgenError as exc:
            raise user_error(exc) from None
        values = []
        for i in range(MAX_CANDIDATES):
            if i < len(outcome.passages):
                p = outcome.passages[i]
                values += [gr.Column(visible=True), p.wav and str(p.wav), str(p.roll), str(p.midi)]
            else:
                values += [gr.Column(visible=False), None, None, None]
        chosen = [str(p.midi) for p in outcome.passages]
        return [*values, [p.settings for p in outcome.passages], outcome.describe(), chosen, parsed]

    def request_stop(self, heard, request: gr.Request):
        self.stops.stop(request.session_hash, heard)


def streamed_outputs(stretch: Stretch, seed: int, parsed) -> list:
    """The run's outputs while the first take streams: its slot shows the stretch and the roll
    so far; the other slots wait for the end."""
    first = [
        gr.Column(visible=True),
        str(stretch.wav),
        str(stretch.roll) if stretch.roll else gr.skip(),
        None,  # (the take's files come at its end)
    ]
    rest = [gr.Column(visible=False), None, None, None] * (MAX_CANDIDATES - 1)
    return [*first, *rest, gr.skip(), gr.skip(), seed, [], parsed]


def final_outputs(outcome, parsed) -> list:
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
    return [
        *values,
        [c.settings for c in outcome.candidates],
        outcome.describe(),
        outcome.candidates[0].settings["seed"],
        [str(c.midi) for c in outcome.candidates],
        parsed,
    ]


def footer(studio: Studio, audio_ok: bool, audio_why: str) -> str:
    return (
        f"Device **{studio.device}** · "
        + ("audio by FluidSynth" if audio_ok else f"⚠️ {audio_why} MIDI and piano rolls still work.")
        + " · Example prompts are excerpts of MAESTRO v3 performances (Hawthorne et al., "
        f"2019, CC BY-NC-SA 4.0). Uploads are limited to {MAX_FILE_BYTES // 2**20} MB."
    )


def build(studio: Studio) -> gr.Blocks:
    examples = load_examples()
    handlers = Handlers(studio, examples)
    audio_ok, audio_why = studio.audio_available()

    with gr.Blocks(title="musicgen — piano continuation studio", delete_cache=(1800, 3600)) as ui:
        gr.Markdown(
            "# 🎹 musicgen — piano continuation studio\n"
            "Give it a piano MIDI prompt; a Transformer trained on the MAESTRO performances "
            "plays on. Prompt in **blue**, continuation in **orange**."
        )
        with gr.Row():
            with gr.Column(scale=5):
                prompt, example, played, undo, start, end, preview_outputs = prompt_panel(
                    examples, audio_ok
                )
            with gr.Column(scale=4):
                preset, dice, settings = settings_panel(studio)
                seconds, temperature, seed, top_k, top_p, candidates, style, random_seed, model = (
                    settings
                )
                with gr.Row():
                    generate = gr.Button("Generate", variant="primary")
                    stop = gr.Button("Stop", variant="stop")
                used_seed = gr.Number(
                    label="Seed used",
                    interactive=False,
                    precision=0,
                    placeholder="after a generation",
                )
        info = gr.Markdown(label="Summary")
        gr.HTML(
            html_template=player.HTML,
            css_template=player.CSS,
            js_on_load=player.JS,
            elem_id="live-player",
            visible=audio_ok,
            **player.page_settings(),
        )
        slots = result_slots(audio_ok, "take")
        details = gr.JSON(label="Candidates, best first: settings and the model's judgement")
        (
            span_start,
            span_end,
            tries,
            span_outputs,
            rewrite,
            rewrite_info,
            passage_slots,
            rewrite_details,
        ) = rewrite_panel(audio_ok)
        passages = gr.State([])  # the piece MIDI of each passage offered by the last rewrite
        heard = gr.Number(visible=False)  # what Stop sends: the seconds of the take heard
        takes = gr.State([])  # the piece MIDI of each candidate of the last generation
        history = gr.State([])  # the prompts continued from, for Undo
        parsed = gr.State(None)  # (path, Performance) of the prompt file last read
        gr.Markdown(footer(studio, audio_ok, audio_why))
        controls = Controls(
            prompt,
            seconds,
            temperature,
            seed,
            top_k,
            top_p,
            candidates,
            start,
            end,
            style,
            random_seed,
            model,
        )

        window_inputs = [prompt, start, end]
        preview = (handlers.show_preview, [*window_inputs, parsed], [*preview_outputs, parsed])
        # One queue per picture, first come first served: a later change's picture must not be
        # overwritten by an earlier one's that took longer (a valid window drawn after a
        # mistake typed since, say).
        prompt.change(*preview, api_name=False, concurrency_id="preview")
        for box in (start, end):  # on every change, not only on Enter
            box.change(*preview, api_name=False, concurrency_id="preview")
        example.change(handlers.pick_example, example, window_inputs, api_name=False)
        played.submit(handlers.use_recording, None, window_inputs, api_name=False)
        for i, (_, take) in enumerate(slots):
            take.click(
                lambda takes, prompt, history, i=i: handlers.continue_take(
                    i, takes, prompt, history
                ),
                [takes, prompt, history],
                [*window_inputs, history, undo],
                api_name=False,
            )
        span = (handlers.show_span, [prompt, span_start, span_end, parsed], [*span_outputs, parsed])
        for box in (prompt, span_start, span_end):
            box.change(*span, api_name=False, concurrency_id="span-preview")
        for i, (_, keep) in enumerate(passage_slots):  # the passage becomes the piece
            keep.click(
                lambda kept, prompt, history, i=i: handlers.continue_take(i, kept, prompt, history),
                [passages, prompt, history],
                [*window_inputs, history, undo],
                api_name=False,
            )
        rewriting = rewrite.click(
            handlers.rewrite,
            [prompt, span_start, span_end, tries, temperature, seed, model, parsed],
            [
                *(c for slot, _ in passage_slots for c in slot),
                rewrite_details,
                rewrite_info,
                passages,
                parsed,
            ],
            api_name="rewrite",
            show_progress_on=[rewrite_info],
            concurrency_limit=CONCURRENCY,
            concurrency_id="generate",  # one model computation at a time, whichever kind
        )
        rewriting.failure(gr.skip, None, rewrite_info, api_name=False, queue=False)
        undo.click(handlers.undo_continue, history, [*window_inputs, history, undo], api_name=False)
        dice.click(lambda: random.randint(0, MAX_SEED), None, seed, api_name=False)
        preset.change(
            lambda name: PRESETS[name], preset, [temperature, top_k, top_p], api_name=False
        )
        generating = generate.click(
            handlers.run,
            [*controls.inputs(), parsed],
            [*(c for slot, _ in slots for c in slot), details, info, used_seed, takes, parsed],
            api_name="generate",
            # progress, and a failure's badge, on the summary alone: not on every take's slot
            show_progress_on=[info],
            concurrency_limit=CONCURRENCY,
            concurrency_id="generate",
        )
        # A failed event leaves a red badge on its progress target (the summary) even once the
        # mistake is put right; the pop-up already said what was wrong, so clear the badge.
        generating.failure(gr.skip, None, info, api_name=False, queue=False)
        # Each streamed stretch lands in the first slot's audio: the page hands it to the
        # live player (no server round trip).
        first_audio = slots[0][0][1]
        first_audio.change(None, first_audio, None, js=player.FEED_JS, api_name=False)
        stop.click(
            handlers.request_stop, heard, None, js=player.HEARD_JS, api_name=False, queue=False
        )
        # Gradio's Number box shows 0 for a starting value of None until it is set once:
        # set the blank-means-automatic boxes (and the seed not used yet) to blank.
        ui.load(
            lambda: (None,) * 5,
            None,
            [start, end, used_seed, span_start, span_end],
            api_name=False,
        )
    return ui


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger("miditok").setLevel(logging.ERROR)
    # MUSICGEN_CHECKPOINT / MUSICGEN_DEVICE / MUSICGEN_DECODER honoured
    studio = Studio.load(output_root=os.environ.get("MUSICGEN_OUTPUTS"))
    ui = build(studio)
    ui.queue(max_size=QUEUE_SIZE, default_concurrency_limit=CONCURRENCY)
    ui.launch(
        allowed_paths=[str(studio.output_root), str(EXAMPLES)],
        max_file_size=MAX_FILE_BYTES,
        ssr_mode=False,
        show_error=True,
        js=PLAYBACK_CURSOR_JS,
    )


if __name__ == "__main__":
    main()
