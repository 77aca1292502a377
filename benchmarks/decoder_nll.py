"""What the CPU's int8 decoder costs in likelihood: NLL of test-split tokens scored through each
decoding step, token by token, as generation computes them. Prints JSON.

Windows of 512 tokens are taken from test pieces spread over the split (one per piece, seeded);
the first 256 are prefilled, the next 256 scored one decode step at a time, with PyTorch's
float32 step and with the ONNX Runtime int8 one. The difference is paired (same tokens), so its
standard error is small even on a sample; scoring the whole split this way would take hours on
a CPU.

    python benchmarks/decoder_nll.py --data ../shared/data/maestro-v3.0.0 [--windows 40]
        [--checkpoint DIR]
"""

import argparse
import json

import numpy as np
import torch
import torch.nn.functional as F

from musicgen.checkpoint import load_checkpoint, resolve
from musicgen.data import build_cache
from musicgen.onnx_step import OnnxDecoder

CONTEXT, SCORED = 256, 256


@torch.inference_mode()
def window_nll(model, step, window: torch.Tensor) -> np.ndarray:
    cache = model.new_cache(1)
    logits = model.prefill(window[:, :CONTEXT], cache)
    nll = []
    for i in range(CONTEXT, CONTEXT + SCORED):
        nll.append(F.cross_entropy(logits.float(), window[:, i]).item())
        logits = step(window[:, i : i + 1], torch.tensor([i]), cache)
    return np.array(nll)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--data", required=True)
    parser.add_argument("--windows", type=int, default=40)
    parser.add_argument("--checkpoint")
    args = parser.parse_args()
    directory = resolve(args.checkpoint)
    model, tok, _ = load_checkpoint(directory)
    cache = build_cache(args.data, tok)
    pieces = [p for p in cache.pieces("test") if p["length"] > CONTEXT + SCORED + 1]
    chosen = [pieces[i] for i in np.linspace(0, len(pieces) - 1, args.windows).astype(int)]
    rng = np.random.default_rng(0)
    int8 = OnnxDecoder(model)
    fp32, q8 = [], []
    for piece in chosen:
        ids = cache.piece_tokens(piece)
        start = int(rng.integers(0, len(ids) - CONTEXT - SCORED))
        window = torch.as_tensor(ids[start : start + CONTEXT + SCORED + 1])[None]
        fp32.append(window_nll(model, model.decode_step, window))
        q8.append(window_nll(model, int8, window))
    fp32, q8 = np.concatenate(fp32), np.concatenate(q8)
    diff = q8 - fp32
    print(
        json.dumps(
            {
                "checkpoint": directory.name,
                "tokens": len(diff),
                "windows": len(chosen),
                "nll_per_token_torch_float32": round(float(fp32.mean()), 5),
                "nll_per_token_onnx_int8": round(float(q8.mean()), 5),
                "difference": round(float(diff.mean()), 5),
                "difference_standard_error": round(float(diff.std(ddof=1) / np.sqrt(len(diff))), 5),
            }
        )
    )


if __name__ == "__main__":
    main()
