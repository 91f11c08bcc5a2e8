#!/usr/bin/env bash
# GPU check for maintainers with a CUDA GPU (CI has none): train the Singapore check-ins on cuda and on cpu with the
# defaults, then compare the validation metrics (NDCG@10 / Recall@10 of each run's held-out split) and the speed.
#
#   bash benchmarks/gpu_check.sh [WORKDIR]        # needs a CUDA build of torch; ~2 min on one GPU + the CPU run
#
# Passes when both runs finish and their NDCG@10 differ by less than TOL (default 0.01: GPU kernels sum in another
# order, so the runs are not bit-identical; the seed-to-seed spread of a single run on this set is ~0.003-0.005).
set -euo pipefail
cd "$(dirname "$0")/.."
WORK=${1:-/tmp/geotower-gpu-check}
TOL=${TOL:-0.01}
PY=${PY:-.venv/bin/python}
GT=${GT:-.venv/bin/geotower}
GPU=${GPU:-cuda}   # GPU=cpu runs the whole script on the CPU twice (checks the script itself, and determinism)
mkdir -p "$WORK"
if [ "$GPU" != cpu ]; then
  $PY -c "import torch, sys; ok = torch.cuda.is_available(); print('torch', torch.__version__, 'cuda', ok, torch.cuda.get_device_name(0) if ok else ''); sys.exit(0 if ok else 1)" \
    || { echo "no CUDA GPU visible to torch: nothing to check" >&2; exit 2; }
fi
$PY -c "from pathlib import Path; from benchmarks.quality.tasks import build_foursquare; build_foursquare(Path('$WORK/data'))"
for run in gpu cpu; do
  dev=$GPU; [ "$run" = cpu ] && dev=cpu
  $GT train "$WORK/data" --out "$WORK/run-$run" --set "train.device=\"$dev\"" --set seed=0 --quiet --json \
    > "$WORK/train-$run.json"
  $GT evaluate "$WORK/run-$run" --quiet --json > "$WORK/eval-$run.json"
done
$PY - "$WORK" "$TOL" <<'PY'
import json, sys
work, tol = sys.argv[1], float(sys.argv[2])
m = {d: json.load(open(f"{work}/eval-{d}.json")) for d in ("gpu", "cpu")}
man = {d: json.load(open(f"{work}/run-{d}/manifest.json")) for d in ("gpu", "cpu")}
for d in ("gpu", "cpu"):
    rows = man[d]["rows"]["train"]
    epochs = man[d]["epochs_run"] + man[d]["best_epoch"] * man[d].get("members", 1)
    wall = man[d]["wall_time_s"]
    print(f"{d}: NDCG@10 {m[d]['ndcg@10']:.4f} Recall@10 {m[d]['recall@10']:.4f} train {wall:.1f} s, "
          f"~{rows * epochs / wall:,.0f} samples/s (rows x epochs incl. refit and members / wall)")
diff = abs(m["gpu"]["ndcg@10"] - m["cpu"]["ndcg@10"])
print(f"|NDCG@10 gpu - cpu| = {diff:.4f} (tolerance {tol})")
sys.exit(0 if diff < tol else 1)
PY
