"""Take docs/screenshot.png, docs/recorder.png and docs/rewrite.png: launch the app with the
bundled checkpoint, record a phrase on the computer keys (the recorder, captured with a key
down), pick an example, generate two candidates, capture the page in headless Chromium, then
rewrite a passage of the example (its panel captured).

    python scripts/screenshot.py [--checkpoint DIR]
"""

import argparse
import os
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

from musicgen.app_process import running_app
from musicgen.checkpoint import resolve

ROOT = Path(__file__).resolve().parent.parent

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--checkpoint")
    parser.add_argument("--out", default=str(ROOT / "docs" / "screenshot.png"))
    args = parser.parse_args()
    env = {"OMP_NUM_THREADS": str(os.cpu_count())}
    with (
        tempfile.TemporaryDirectory() as tmp,
        running_app(resolve(args.checkpoint), Path(tmp), env) as (url, _),
        sync_playwright() as p,
    ):
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(url)
        record_a_phrase(page, Path(args.out).with_name("recorder.png"))
        page.get_by_label("…or pick an example (MAESTRO test split)").click()
        page.get_by_role("option", name="Chopin").first.click()
        page.locator("img[src*='prompt']").first.wait_for(timeout=60_000)
        candidates = page.get_by_label("number input for Candidates")
        candidates.fill("2")
        candidates.press("Enter")
        page.get_by_role("button", name="Generate").click()
        page.locator("img[src*='-step1-c2']").first.wait_for(timeout=180_000)
        page.wait_for_timeout(1500)
        # the first take "paused a third of the way in": its playback cursor shows on the roll
        page.locator(".musicgen-playable audio").nth(1).evaluate(
            "a => { a.currentTime = a.duration / 3; }"
        )
        page.wait_for_timeout(500)
        Path(args.out).parent.mkdir(exist_ok=True)
        page.screenshot(path=args.out, full_page=True)
        rewrite_a_passage(page, Path(args.out).with_name("rewrite.png"))
        browser.close()
    print(args.out)


def rewrite_a_passage(page, out: Path) -> None:
    """Seconds 10-14 of the example rewritten, eight passages tried: the panel with the best
    four."""
    page.get_by_text("✎ Rewrite a passage of the piece").click()
    page.get_by_label("Passage from (s)").fill("10")
    page.get_by_label("Passage to (s)").fill("14")
    tries = page.get_by_label("number input for Passages to try")
    tries.fill("8")
    tries.press("Enter")
    page.locator("#passage-preview img").wait_for(timeout=30_000)
    page.locator("#rewrite-button").click()
    page.locator("img[src*='-step1-r4']").first.wait_for(timeout=180_000)
    page.wait_for_timeout(1500)
    page.locator("#rewrite").screenshot(path=str(out))


def record_a_phrase(page, out: Path) -> None:
    """A C major arpeggio on the computer keys, captured while its last chord is held."""
    page.locator(".mg-record").click()
    for key in "adgk":
        page.keyboard.down(key)
        page.wait_for_timeout(180)
        if key != "k":
            page.keyboard.up(key)
    page.keyboard.down("d")
    page.keyboard.down("g")
    page.wait_for_timeout(300)
    page.locator(".mg-recorder").screenshot(path=str(out))
    for key in "kdg":
        page.keyboard.up(key)
    page.locator(".mg-record").click()
    page.locator("#prompt-file").get_by_text("recording-").wait_for(timeout=30_000)


if __name__ == "__main__":
    main()
