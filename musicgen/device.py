"""The machine: device and precision choice (cuda (NVIDIA, and AMD through ROCm builds) -> mps ->
xpu -> cpu), its processor's name, and where it keeps what it computed once (the cache root)."""

from __future__ import annotations

import contextlib
import os
import platform
import time
from pathlib import Path

import torch

from .errors import InvalidParameterError


def pick_device(requested: str | None = None) -> torch.device:
    """The device to use: `requested`, else $MUSICGEN_DEVICE, else the best available."""
    name = requested or os.environ.get("MUSICGEN_DEVICE") or None
    if name:
        try:
            device = torch.device(name)
        except RuntimeError:
            raise InvalidParameterError(f"Unknown device '{name}'.") from None
        if not is_available(device):
            raise InvalidParameterError(f"Device '{name}' is not available on this machine.")
        return device
    if torch.cuda.is_available():  # true on ROCm builds too
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return torch.device("mps")
    if hasattr(torch, "xpu") and torch.xpu.is_available():
        return torch.device("xpu")
    return torch.device("cpu")


def is_available(device: torch.device) -> bool:
    if device.type == "cpu":
        return True
    if device.type == "cuda":
        return torch.cuda.is_available()
    if device.type == "mps":
        return torch.backends.mps.is_available()
    if device.type == "xpu":
        return hasattr(torch, "xpu") and torch.xpu.is_available()
    return False


def train_dtype(device: torch.device) -> torch.dtype:
    """Mixed-precision dtype for training: bf16 where supported, fp16 (with a GradScaler) on
    older GPUs, fp32 on MPS (attention in half precision there is not reliable) and CPU."""
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "xpu":
        return torch.bfloat16
    return torch.float32


def inference_dtype(device: torch.device) -> torch.dtype:
    return train_dtype(device)


def autocast(device: torch.device, dtype: torch.dtype):
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def fast_matmul_dtype(device: torch.device) -> torch.dtype:
    """bfloat16 where the device multiplies it much faster than float32 (GPUs; CPUs with
    AVX512-BF16 or AMX: measured once, ~3x on an AMD EPYC with AVX512-BF16), else float32
    (an AVX2 CPU emulates bfloat16, slower than float32)."""
    if device.type != "cpu":
        return inference_dtype(device)
    x, w = torch.randn(512, 512), torch.randn(1024, 512)
    seconds = {}
    for dtype in (torch.float32, torch.bfloat16):
        a, b = x.to(dtype), w.to(dtype)
        torch.nn.functional.linear(a, b)  # warm-up
        started = time.perf_counter()
        for _ in range(4):
            torch.nn.functional.linear(a, b)
        seconds[dtype] = time.perf_counter() - started
    faster = seconds[torch.bfloat16] < 0.6 * seconds[torch.float32]
    return torch.bfloat16 if faster else torch.float32


def describe(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    if device.type == "cpu":
        threads = torch.get_num_threads()
        return f"cpu ({threads} thread{'s' if threads > 1 else ''})"
    return device.type


def cpu_name() -> str:
    """The processor's model name (what every CPU figure names)."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def cache_root() -> Path:
    """Where this machine keeps what is computed once and reused: token caches, decoder choices."""
    return Path(os.environ.get("MUSICGEN_CACHE", Path.home() / ".cache" / "musicgen"))
