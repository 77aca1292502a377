"""A checkpoint's weights as int8 and back, to carry a model where bytes are scarce (a lent GPU
machine takes at most 64 MiB with the code: maestro-base's float16 weights are 49 MB, as int8
25 MB). Matrices are stored per row as int8 with a float32 scale (symmetric, the row's largest
magnitude at 127); vectors (the norms) stay float32. Unpacked, it is an ordinary float32
checkpoint folder; what the rounding costs is measured with `evaluate` (the README of the GPU
job, scripts/gpu_warm_start.sh).

    python scripts/int8_weights.py pack CHECKPOINT PACKED_DIR
    python scripts/int8_weights.py unpack PACKED_DIR CHECKPOINT_DIR
"""

import shutil
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from musicgen.checkpoint import CONFIG_FILE, WEIGHTS_FILE, resolve
from musicgen.tokenizer import TOKENIZER_FILE

PACKED_FILE = "model-int8.safetensors"
SCALE = ".int8_scale"  # the suffix of a matrix's row scales


def pack(source: str, out: str) -> None:
    directory = resolve(source)
    packed = {}
    for name, w in load_file(str(directory / WEIGHTS_FILE)).items():
        w = w.float()
        if w.dim() == 2:
            scale = w.abs().amax(dim=1, keepdim=True).clamp(min=1e-12) / 127
            packed[name] = torch.round(w / scale).to(torch.int8)
            packed[name + SCALE] = scale
        else:
            packed[name] = w
    Path(out).mkdir(parents=True, exist_ok=True)
    save_file(packed, str(Path(out) / PACKED_FILE))
    for name in (CONFIG_FILE, TOKENIZER_FILE):
        shutil.copy(directory / name, Path(out) / name)


def unpack(source: str, out: str) -> None:
    packed = load_file(str(Path(source) / PACKED_FILE))
    weights = {
        name: w.float() * packed[name + SCALE] if name + SCALE in packed else w
        for name, w in packed.items()
        if not name.endswith(SCALE)
    }
    Path(out).mkdir(parents=True, exist_ok=True)
    save_file(weights, str(Path(out) / WEIGHTS_FILE))
    for name in (CONFIG_FILE, TOKENIZER_FILE):
        shutil.copy(Path(source) / name, Path(out) / name)


if __name__ == "__main__":
    {"pack": pack, "unpack": unpack}[sys.argv[1]](sys.argv[2], sys.argv[3])
