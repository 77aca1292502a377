"""What the CPU's int8 (or int4) decoder costs in likelihood: NLL of test-split tokens scored
through each decoding step, token by token, as generation computes them. Prints JSON.

Windows of 512 tokens are taken from test pieces spread over the split (one per piece, seeded);
the first 256 are prefilled, the next 256 scored one decode step at a time, with PyTorch's
float32 step and with the ONNX Runtime one of each `--weights` (int8 by default). The
difference is paired (same tokens), so its
standard error is small even on a sample; scoring the whole split this way would take hours on
a CPU.

    python benchmarks/decoder_nll.py --data ../shared/data/maestro-v3.0.0 [--windows 40]
        [--checkpoint DIR] [--weights int8 int4]
"""

import argparse
import json

import numpy as np
import torch
import torch.nn.functional as F

from musicgen.checkpoint import load_checkpoint, resolve
from musicgen.data import build_cache
from musicgen.onnx_step import WEIGHTS, OnnxDecoder

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
    parser.add_argument("--weights", nargs="+", choices=WEIGHTS[:2], default=["int8"])
    args = parser.parse_args()
    directory = resolve(args.checkpoint)
    model, tok, _ = load_checkpoint(directory)
    cache = build_cache(args.data, tok)
    pieces = [p for p in cache.pieces("test") if p["length"] > CONTEXT + SCORED + 1]
    chosen = [pieces[i] for i in np.linspace(0, len(pieces) - 1, args.windows).astype(int)]
    rng = np.random.default_rng(0)
    engines = {w: OnnxDecoder(model, weights=w) for w in args.weights}
    fp32, quantized = [], {w: [] for w in engines}
    for piece in chosen:
        ids = cache.piece_tokens(piece)
        start = int(rng.integers(0, len(ids) - CONTEXT - SCORED))
        window = torch.as_tensor(ids[start : start + CONTEXT + SCORED + 1])[None]
        fp32.append(window_nll(model, model.decode_step, window))
        for w, engine in engines.items():
            quantized[w].append(window_nll(model, engine, window))
    fp32 = np.concatenate(fp32)
    result = {
        "checkpoint": directory.name,
        "tokens": len(fp32),
        "windows": len(chosen),
        "nll_per_token_torch_float32": round(float(fp32.mean()), 5),
    }
    for w, nll in quantized.items():
        diff = np.concatenate(nll) - fp32
        result[f"nll_per_token_onnx_{w}"] = round(float(diff.mean() + fp32.mean()), 5)
        result[f"difference_{w}"] = round(float(diff.mean()), 5)
        result[f"difference_{w}_standard_error"] = round(
            float(diff.std(ddof=1) / np.sqrt(len(diff))), 5
        )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
