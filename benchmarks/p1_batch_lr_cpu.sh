#!/usr/bin/env bash
# Does accuracy hold at a 4x larger batch with the learning rate scaled (issue 12, item 2)? The laptop recipe
# (p1_laptop: airnet, 25 epochs, batch 256, lr 0.2) at batch 1024 with lr_base_batch 256, linear (lr 0.8) and
# sqrt (lr 0.4) scaling, each run alone on one thread; the batch-256 run is the recipe's own (README row).
# Usage: benchmarks/p1_batch_lr_cpu.sh DLCV_ROOT RUNS_DIR [SCALINGS]   (SCALINGS default: "linear sqrt base")
set -euo pipefail
d=$1; r=$2; scalings=${3:-linear sqrt base}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
for s in $scalings; do
  if [ "$s" = base ]; then extra=(); else extra=(--batch-size 1024 --lr-base-batch 256 --lr-scaling "$s"); fi
  /usr/bin/time -f "%e s wall, %M KB max RSS" fcnlab classify train --config p1_laptop \
    --data "$d/p1_data/train_50" --val "$d/p1_data/val_50" --val-csv "$d/p1_data/val_gt.csv" \
    "${extra[@]}" --out "$r/p1_laptop_b1024_$s" 2>&1 | grep -v "step " | tail -n 32
  fcnlab classify eval --ckpt "$r/p1_laptop_b1024_$s/best.pt" --data "$d/p1_data/val_50" \
    --csv "$d/p1_data/val_gt.csv" | head -n 1
  fcnlab classify eval --ckpt "$r/p1_laptop_b1024_$s/best.pt" --data "$d/p1_data/val_50" \
    --csv "$d/p1_data/val_gt.csv" --tta flip | head -n 1
done
