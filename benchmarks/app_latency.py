"""How long a person waits in the app: launch `python app.py` on loopback (all cores), then
time a 20 s continuation of the Chopin example two ways, after a warm-up request:

- through the API (gradio_client's submit(), upload included): to the first partial output
  with playable audio (the take's first stretch), and to the final outputs;
- in a real browser (headless Chromium): from the click on Generate to the first sound of the
  live player (the moment its first stretch starts playing), to the take's final files, and
  whether the sound ever stopped before the take's end (stalls), listening to the end.

Prints JSON. python benchmarks/app_latency.py [--checkpoint DIR] [--seconds 20] [--repeats 3]
"""

import argparse
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from gradio_client import Client, handle_file

from musicgen.app_process import running_app
from musicgen.checkpoint import resolve
from musicgen.device import cpu_name

ROOT = Path(__file__).resolve().parent.parent
PROMPT = ROOT / "examples" / "chopin-etude-op-10-no-12.mid"
THREADS = str(os.cpu_count())  # as a real deployment: all cores


def through_the_api(url: str, seconds: float, repeats: int) -> dict:
    client = Client(url, verbose=False)
    first, final = [], []
    for seed in range(repeats + 1):  # the first: a warm-up
        started = time.perf_counter()
        job = client.submit(
            prompt=handle_file(str(PROMPT)),
            seconds=seconds,
            temperature=1.0,
            seed=seed,
            api_name="/generate",
        )
        heard = None
        while not job.done():
            outputs = job.outputs()
            if heard is None and outputs and outputs[0][0] and Path(outputs[0][0]).is_file():
                heard = time.perf_counter() - started
            time.sleep(0.005)
        assert job.result()[0].endswith(".wav")
        final.append(time.perf_counter() - started)
        first.append(heard if heard is not None else final[-1])
    return summary(first, final)


def in_the_browser(url: str, repeats: int) -> dict:
    from playwright.sync_api import sync_playwright

    first, final, stalls = [], [], []
    with sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=shutil.which("chromium") or shutil.which("chromium-browser"),
            args=["--headless", "--no-sandbox", "--disable-gpu"],
        )
        page = browser.new_page(viewport={"width": 1280, "height": 1200})
        page.goto(url)
        page.get_by_role("button", name="Generate").wait_for()
        page.get_by_label("…or pick an example (MAESTRO test split)").click()
        page.get_by_role("option", name="Chopin").first.click()
        page.locator("img[src*='prompt']").first.wait_for(timeout=60_000)
        page.wait_for_timeout(1500)
        generate = page.get_by_role("button", name="Generate")
        generate.evaluate(  # the click's own time stamp, taken in the page
            "b => b.addEventListener('click', () => { window.clickedAt = performance.now(); })"
        )
        for _ in range(repeats + 1):
            generate.click()
            page.wait_for_function(
                "() => window.musicgenLive?.stats()?.doneAt > window.clickedAt", timeout=600_000
            )
            page.wait_for_function(  # listen to the end (stalls are counted on the way)
                "() => ['finished', 'stopped'].includes(window.musicgenLive.stats().state)",
                timeout=600_000,
            )
            s = page.evaluate("({...window.musicgenLive.stats(), clickedAt: window.clickedAt})")
            first.append((s["firstSoundAt"] - s["clickedAt"]) / 1000)
            final.append((s["doneAt"] - s["clickedAt"]) / 1000)
            stalls.append(s["stalls"])
        browser.close()
    return summary(first, final) | {"stalls": stalls[1:]}


def summary(first: list[float], final: list[float]) -> dict:
    return {
        "first_sound_s": round(statistics.median(first[1:]), 3),
        "final_take_s": round(statistics.median(final[1:]), 3),
        "warm_up_first_sound_s": round(first[0], 3),
        "all_first_sound_s": [round(t, 3) for t in first[1:]],
        "all_final_take_s": [round(t, 3) for t in final[1:]],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--checkpoint")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-browser", action="store_true")
    args = parser.parse_args()
    checkpoint = resolve(args.checkpoint)
    with (
        tempfile.TemporaryDirectory() as tmp,
        running_app(checkpoint, Path(tmp), {"OMP_NUM_THREADS": THREADS}) as (url, _),
    ):
        result = {
            "checkpoint": checkpoint.name,
            "cpu": cpu_name(),
            "cores": os.cpu_count(),
            "seconds_of_music": args.seconds,
            "prompt": PROMPT.name,
            "api": through_the_api(url, args.seconds, args.repeats),
        }
        if not args.no_browser:  # (the browser's music settings are the app's defaults)
            result["browser"] = in_the_browser(url, args.repeats)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
