"""Click-to-audio latency of the app: launch `python app.py` on loopback, send a 20 s
continuation request through gradio_client (upload included), wait for the WAV. Prints JSON.

    python benchmarks/app_latency.py [--checkpoint DIR] [--seconds 20] [--repeats 3]
"""

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from gradio_client import Client, handle_file

from musicgen.app_process import running_app
from musicgen.checkpoint import resolve

ROOT = Path(__file__).resolve().parent.parent

THREADS = str(os.cpu_count())  # as a real deployment: all cores


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--checkpoint")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    prompt = ROOT / "examples" / "chopin-etude-op-10-no-12.mid"
    with (
        tempfile.TemporaryDirectory() as tmp,
        running_app(resolve(args.checkpoint), Path(tmp), {"OMP_NUM_THREADS": THREADS}) as (url, _),
    ):
        client = Client(url, verbose=False)
        timings = []
        for seed in range(args.repeats + 1):
            started = time.perf_counter()
            out = client.predict(
                prompt=handle_file(str(prompt)),
                seconds=args.seconds,
                temperature=1.0,
                seed=seed,
                api_name="/generate",
            )
            assert out[0].endswith(".wav")
            timings.append(time.perf_counter() - started)
    print(
        json.dumps(
            {
                "seconds_of_music": args.seconds,
                "first_request_s": round(timings[0], 3),
                "median_s": round(statistics.median(timings[1:]), 3),
                "all_s": [round(t, 3) for t in timings],
                "prompt": prompt.name,
            }
        )
    )


if __name__ == "__main__":
    main()
