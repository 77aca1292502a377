#!/bin/bash
# The one GPU call that trained and measured checkpoints/maestro-base. Run on a GPU machine from
# the project's root, after `../shared/gpu/prepare.sh` here built .device-carry/ (token cache,
# wheels, the CSV and train.sh) and a copy of this file as .device-carry/job.sh:
#   OUT=<folder that comes back> bash .device-carry/job.sh [more train flags]
# More train flags go to both training phases.
# Trains with train.sh (the project's own trainer, two phases inside the budget), then evaluates
# the result on the full test and validation splits (float32 weights under bf16 autocast, float32
# exactly, and bf16 weights: what a CPU serving bf16 weights computes), then the CUDA bench.
# Weights come back in parts (cat model.safetensors.part-* > model.safetensors), the rest in
# meta.tgz and results.tgz.
set -u
T0=$(date +%s)
BUDGET_S=${BUDGET_S:-370} bash .device-carry/train.sh --n-layer 8 --n-head 8 --n-embd 512 \
  --lr 1e-3 --min-lr 1e-4 --dropout 0.2 --velocity-shift 1 "$@"
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
mkdir -p /tmp/res
cp $OUT/summary.txt $OUT/phase*.log /tmp/res/ 2>/dev/null
D=.device-carry/data/maestro-v3.0.0
for split in test validation; do
  timeout 60 python3 -m musicgen evaluate --data $D --cache-dir /tmp/cache --split $split \
    --checkpoint /tmp/bundle --device cuda --batch-size 32 --json > /tmp/res/eval-$split.json 2> /tmp/res/eval-$split.err
done
timeout 60 python3 -m musicgen evaluate --data $D --cache-dir /tmp/cache --split test --checkpoint /tmp/bundle \
  --device cuda --batch-size 32 --weights-dtype bfloat16 --json > /tmp/res/eval-test-bf16.json 2> /tmp/res/eval-test-bf16.err
timeout 60 python3 -m musicgen evaluate --data $D --cache-dir /tmp/cache --split test --checkpoint /tmp/bundle \
  --device cuda --batch-size 32 --weights-dtype float32 --json > /tmp/res/eval-test-fp32.json 2> /tmp/res/eval-test-fp32.err
echo "evaluated at +$(( $(date +%s) - T0 )) s" >> /tmp/res/summary.txt
B="python3 -m musicgen bench --device cuda --quick --checkpoint /tmp/bundle --batches 1,16 --json"
timeout 150 $B --paths torch-eager > /tmp/res/bench-cuda-eager.json 2> /tmp/res/bench-cuda-eager.err
echo "bench eager exit $? at +$(( $(date +%s) - T0 )) s" >> /tmp/res/summary.txt
LEFT=$(( 585 - ($(date +%s) - T0) ))
timeout $LEFT $B --paths torch-compiled > /tmp/res/bench-cuda-compiled.json 2> /tmp/res/bench-cuda-compiled.err
echo "bench compiled exit $? at +$(( $(date +%s) - T0 )) s" >> /tmp/res/summary.txt
nvidia-smi >> /tmp/res/summary.txt 2>&1
rm -f $OUT/summary.txt $OUT/phase*.log
tar czf $OUT/results.tgz -C /tmp res
ls -la $OUT
cat /tmp/res/summary.txt | head -20; cat /tmp/res/eval-*.json
