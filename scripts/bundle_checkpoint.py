"""Copy the best checkpoint of a training run into checkpoints/NAME as the bundled model:
float16 weights (half the size, a file under 10 MB that git and Spaces take without LFS; the
NLL change is measured and printed), config, tokenizer, the training log.

    python scripts/bundle_checkpoint.py runs/maestro-small checkpoints/maestro-small
"""

import json
import shutil
import sys
from pathlib import Path

import torch

from musicgen.checkpoint import CONFIG_FILE, load_checkpoint, resolve, save_checkpoint


def main(run: str, out: str) -> None:
    source = resolve(run)
    model, tokenizer, config = load_checkpoint(source)
    meta = {k: v for k, v in config.items() if k != "model"}
    meta["source_step_folder"] = source.name
    meta["weights_stored_as"] = "float16"
    out = Path(out)
    save_checkpoint(out, model, tokenizer, meta, dtype=torch.float16)
    shutil.copy(Path(run) / "log.jsonl", out / "train-log.jsonl")
    print(json.dumps(json.loads((out / CONFIG_FILE).read_text()), indent=1))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
