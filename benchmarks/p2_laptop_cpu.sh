#!/usr/bin/env bash
# P2 on a laptop: train a p2_laptop* recipe alone on one torch thread (wall time and peak memory measured),
# then score its best.pt and last.pt at full resolution on the validation tiles without and with D4 TTA
# (TTAS="none flip d4" adds flip; the course's per-class lines are kept; each evaluation in RUN/eval/NAME). Results: docs/BENCHMARKS.md ("P2 on a laptop").
# Usage: benchmarks/p2_laptop_cpu.sh DLCV_ROOT RUNS_DIR [RECIPES]   (default: "p2_laptop p2_laptop_fcn8s p2_laptop_fcn32s")
# A recipe whose RUNS_DIR/NAME/train.time exists is not trained again, only evaluated. PHASES=train or
# PHASES=eval runs one phase (e.g. the evaluations on another core while the next recipe trains).
# EXTRA="--sampling rare" SUFFIX=_rare: options added to each training, and the run folders named NAME_rare.
set -euo pipefail
d=$1; r=$2; recipes=${3:-p2_laptop p2_laptop_fcn8s p2_laptop_fcn32s}; phases=${PHASES:-train eval}
ttas=${TTAS:-none d4}; extra=${EXTRA:-}; suffix=${SUFFIX:-}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
mkdir -p "$r"
for name in $recipes; do
  run="$r/$name$suffix"
  if [[ " $phases " == *" train "* && ! -f "$run/train.time" ]]; then
    /usr/bin/time -f "%e s wall, %M KB max RSS, %P CPU" -o "$run.time" \
      fcnlab segment train --config "$name" --data "$d/p2_data/train" --val "$d/p2_data/validation" \
      --out "$run" $extra 2>&1 | grep -v " step \| image " | tail -n 12
    mv "$run.time" "$run/train.time"
  fi
  echo "$name$suffix: train $(cat "$run/train.time")"
  [[ " $phases " == *" eval "* ]] || continue
  for ckpt in best last; do
    for tta in $ttas; do
      out=$(fcnlab segment eval --ckpt "$run/$ckpt.pt" --data "$d/p2_data/validation" --tta "$tta" 2>/dev/null)
      echo "$name$suffix, $ckpt.pt, tta $tta: $(echo "$out" | grep mean_iou) | $(echo "$out" | grep 'class #' | tr '\n' ' ')"
    done
  done
done
