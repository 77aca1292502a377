"""Take docs/screenshot.png: launch the app with the bundled checkpoint, pick an example, generate
two candidates, and capture the page in headless Chromium.

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
        browser.close()
    print(args.out)


if __name__ == "__main__":
    main()
