"""Launch `python app.py` as a real server on a free loopback port: for the API and browser
tests, the app benchmarks and the screenshot script."""

import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent  # the checkout: app.py lives there


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running_app(checkpoint: Path, output_root: Path, extra_env: dict | None = None):
    port = free_port()
    env = dict(
        os.environ,
        MUSICGEN_CHECKPOINT=str(checkpoint),
        GRADIO_SERVER_PORT=str(port),
        GRADIO_SERVER_NAME="127.0.0.1",
        OMP_NUM_THREADS="1",
        GRADIO_ANALYTICS_ENABLED="False",
        MUSICGEN_OUTPUTS=str(output_root),
    )
    env.update(extra_env or {})
    log = open(output_root / "server.log", "w")  # noqa: SIM115 (closed in the finally below)
    proc = subprocess.Popen(
        [sys.executable, str(ROOT / "app.py")],
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=ROOT,
    )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.time() + 120
        while True:
            if proc.poll() is not None:
                raise RuntimeError("app exited:\n" + (output_root / "server.log").read_text())
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                if time.time() > deadline:
                    raise TimeoutError("app did not start in 120 s") from None
                time.sleep(0.5)
        yield url, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
