"""Soak: sequential requests through the API from many sessions; does the server's memory stay
flat? Launches `python app.py` on loopback, sends N requests round-robin from S gradio_client
sessions (each with its own upload), and prints the server's resident memory as it goes (JSON).

    python benchmarks/soak.py [--requests 200] [--sessions 20] [--seconds 2]
        [--checkpoint checkpoints/maestro-small]
"""

import argparse
import json
import tempfile
import time
from pathlib import Path

from gradio_client import Client, handle_file

from musicgen.app_process import running_app
from musicgen.checkpoint import resolve

ROOT = Path(__file__).resolve().parent.parent


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--checkpoint", default=str(ROOT / "checkpoints" / "maestro-small"))
    args = parser.parse_args()
    prompts = sorted((ROOT / "examples").glob("*.mid"))
    with (
        tempfile.TemporaryDirectory() as tmp,
        running_app(resolve(args.checkpoint), Path(tmp)) as (url, proc),
    ):
        clients = [Client(url, verbose=False) for _ in range(args.sessions)]
        started, samples = time.perf_counter(), []
        for i in range(args.requests):
            out = clients[i % args.sessions].predict(
                prompt=handle_file(str(prompts[i % len(prompts)])),
                seconds=args.seconds,
                temperature=1.0,
                seed=i,
                api_name="/generate",
            )
            assert out[2], f"request {i} gave no MIDI"
            if (i + 1) % args.sessions == 0:
                samples.append({"requests": i + 1, "rss_mb": round(rss_mb(proc.pid), 1)})
        wall = time.perf_counter() - started
    first, last = samples[0]["rss_mb"], samples[-1]["rss_mb"]
    print(
        json.dumps(
            {
                "checkpoint": Path(args.checkpoint).name,
                "requests": args.requests,
                "sessions": args.sessions,
                "seconds_per_request": args.seconds,
                "wall_s": round(wall, 1),
                "rss_mb": samples,
                "growth_after_first_round_mb": round(last - first, 1),
            }
        )
    )


if __name__ == "__main__":
    main()
