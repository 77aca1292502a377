#!/bin/bash
# The GPU issue's one call: maestro-base trained further from where it is (`train --init-from`)
# with a 2,048-token window and maestro-base's recipe (65,536 tokens a step, dropout 0.2, velocity
# shift; a fresh AdamW re-warmed to half its peak learning rate), then judged there: the whole
# test and validation splits (`evaluate`) and how much of its window it uses
# (`benchmarks/context_use.py`). A quarter of its windows read the music after them first
# (`--cue-p 0.25`, data.with_cue): the rewrite's lever that a CPU cannot train (310 steps of
# maestro-small on this CPU moved nothing, docs/music.md); judge it afterwards on the CPU with
# `benchmarks/rewrite_stats.py --checkpoint RUN` against `--without-cue`. From the project's root:
#
#   bash scripts/gpu_warm_start.sh prepare   # .device-carry/: token cache, wheels, int8 weights
#   bash scripts/gpu_warm_start.sh untrack   # the bundled weights stay here during the call
#   device run (carry .device-carry):  OUT=$OUT bash scripts/gpu_warm_start.sh run
#   bash scripts/gpu_warm_start.sh retrack   # afterwards
#
# The working tree that travels is at most 64 MiB: the code (~2 MB), the token cache (xz, ~20
# MB), the wheels the machine lacks (~5 MB) and the starting weights as int8 (25 MB; maestro-base's
# float16 file alone is 49 MB). `run` trains for what BUDGET_S leaves (phase 1 measures tokens/s,
# phase 2 resumes the run with max_steps sized to the time left), evaluates, and leaves in $OUT
# at most 8 files: the float16 weights in 15 MB parts (cat model.safetensors.part-* >
# model.safetensors), meta.tgz (config, tokenizer, training log, a sample) and results.tgz.
#
# A dry run on a CPU, end to end, with maestro-small's weights and a window twice its own:
#   INIT=checkpoints/maestro-small bash scripts/gpu_warm_start.sh prepare
#   DEVICE=cpu PY=.venv/bin/python BATCH=2 BLOCK=1024 WARMUP=4 BUDGET_S=150 EVAL_FILES=2 \
#     CONTEXT_PIECES=2 OUT=/tmp/dry bash scripts/gpu_warm_start.sh run
set -u
C=.device-carry
PY=${PY:-python3}
case "${1:-}" in
prepare)
  set -e
  grep -qx "/$C/" .git/info/exclude 2>/dev/null || echo "/$C/" >> .git/info/exclude
  # the token cache, the CSV and the wheels (once): ../shared/gpu/prepare.sh builds them
  test -f $C/cache.tar.xz || PY=.venv/bin/python bash ../shared/gpu/prepare.sh
  rm -rf $C/init-int8
  .venv/bin/python scripts/int8_weights.py pack "${INIT:-checkpoints/maestro-base}" $C/init-int8
  du -sh $C; git ls-files -z | grep -zv '^checkpoints/' | du -cb --files0-from=- | tail -1
  ;;
untrack)  # tracked files travel: the bundled checkpoints (65 MB) would not fit beside the carry
  git rm -r -q --cached checkpoints && echo /checkpoints/ >> .git/info/exclude
  ;;
retrack)
  git reset -q && sed -i '\#^/checkpoints/$#d' .git/info/exclude && git status --short | head
  ;;
run)
  OUT=${OUT:-gpu-out}; mkdir -p "$OUT" /tmp/res
  T0=$(date +%s)
  DEADLINE=$((T0 + ${BUDGET_S:-400}))  # the end of training; evaluation follows (~1.5 min)
  DEVICE=${DEVICE:-cuda}; BATCH=${BATCH:-32}; BLOCK=${BLOCK:-2048}; WARMUP=${WARMUP:-200}
  if ! $PY -c "import miditok" 2>/dev/null; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site \
      $C/whl/*.whl || exit 1
  fi
  export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1
  rm -rf /tmp/cache /tmp/init /tmp/run /tmp/bundle
  $PY -c "import tarfile; tarfile.open('$C/cache.tar.xz').extractall('/tmp')" || exit 1
  $PY scripts/int8_weights.py unpack $C/init-int8 /tmp/init || exit 1
  D=$C/data/maestro-v3.0.0
  { nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || echo "$DEVICE"; } \
    | tee /tmp/res/summary.txt
  ARGS=(--data $D --out /tmp/run --cache-dir /tmp/cache --device $DEVICE --init-from /tmp/init
        --batch-size $BATCH --block-size $BLOCK --lr 5e-4 --min-lr 5e-5 --warmup-steps $WARMUP
        --dropout 0.2 --velocity-shift 1 --eval-batches 16 --log-every 10 --sample-seconds 5
        --patience 0 --cue-p 0.25)
  COMPILE=; [ "$DEVICE" = cuda ] && COMPILE=--compile
  P1="--max-steps 100000 --stop-at-step 40 --eval-every 100000"
  timeout 240 $PY -m musicgen train "${ARGS[@]}" $COMPILE $P1 > /tmp/res/phase1.log 2>&1
  if [ $? -ne 0 ] && [ -n "$COMPILE" ]; then
    echo "phase 1 with --compile failed; again without" | tee -a /tmp/res/summary.txt
    rm -rf /tmp/run; COMPILE=
    $PY -m musicgen train "${ARGS[@]}" $P1 > /tmp/res/phase1.log 2>&1
  fi
  test -f /tmp/run/latest || { tail -30 /tmp/res/phase1.log; exit 1; }
  read N EVERY LIMIT TPS < <($PY - "$DEADLINE" "$BATCH" "$BLOCK" "$WARMUP" <<'PYEOF'
import json, statistics, sys, time
deadline, batch, block, warmup = (int(x) for x in sys.argv[1:5])
recs = [json.loads(line) for line in open("/tmp/run/log.jsonl")]
tps = statistics.median(r["tokens_per_s"] for r in recs if "tokens_per_s" in r and r["step"] >= 20)
left = deadline - time.time() - 45  # restart, recompile, the final save and sample
n = max(40 + int(left * tps / (batch * block) * 0.93), warmup + 1)
print(n, max(250, n // 4), round((left + 20) / 60, 2), round(tps))
PYEOF
)
  echo "phase 1: $TPS tokens/s -> max_steps $N, eval every $EVERY, limit $LIMIT min $COMPILE" \
    | tee -a /tmp/res/summary.txt
  timeout $((DEADLINE - $(date +%s) + 30)) $PY -m musicgen train "${ARGS[@]}" $COMPILE --resume \
    --max-steps $N --eval-every $EVERY --time-limit-min $LIMIT > /tmp/res/phase2.log 2>&1
  echo "phase 2 exit $? at +$(( $(date +%s) - T0 )) s; best $(cat /tmp/run/best)" \
    | tee -a /tmp/res/summary.txt
  $PY scripts/bundle_checkpoint.py /tmp/run /tmp/bundle > /dev/null || exit 1
  split -b 15M -d /tmp/bundle/model.safetensors "$OUT/model.safetensors.part-"
  cp /tmp/run/$(cat /tmp/run/best)/sample.mid /tmp/bundle/ 2>/dev/null
  tar czf "$OUT/meta.tgz" -C /tmp/bundle config.json tokenizer.json train-log.jsonl \
    $(test -f /tmp/bundle/sample.mid && echo sample.mid)
  FILES=; [ -n "${EVAL_FILES:-}" ] && FILES="--max-files $EVAL_FILES"
  for split in test validation; do
    timeout 120 $PY -m musicgen evaluate --data $D --cache-dir /tmp/cache --split $split $FILES \
      --checkpoint /tmp/bundle --device $DEVICE --batch-size 16 --json \
      > /tmp/res/eval-$split.json 2> /tmp/res/eval-$split.err
    echo "evaluate $split exit $? at +$(( $(date +%s) - T0 )) s" | tee -a /tmp/res/summary.txt
  done
  timeout 90 $PY benchmarks/context_use.py --data $D --cache-dir /tmp/cache --checkpoint /tmp/bundle \
    --device $DEVICE --pieces ${CONTEXT_PIECES:-48} --no-stretch \
    > /tmp/res/context-use.json 2> /tmp/res/context-use.err
  echo "context_use exit $? at +$(( $(date +%s) - T0 )) s" | tee -a /tmp/res/summary.txt
  tar czf "$OUT/results.tgz" -C /tmp res
  ls -la "$OUT"; cat /tmp/res/eval-*.json; grep val_loss /tmp/run/log.jsonl | tail -5
  ;;
*)
  echo "usage: bash scripts/gpu_warm_start.sh prepare|untrack|run|retrack (see its header)"
  exit 2
  ;;
esac
