#!/usr/bin/env bash
# Does accuracy hold at a 4x larger batch with the learning rate scaled? The laptop recipe
# (p1_laptop: airnet, 25 epochs, batch 256, lr 0.2) as it is ("base") and at batch 1024 with lr_base_batch 256,
# "linear" (lr 0.8) and "sqrt" (lr 0.4) scaling; each run alone on one thread, then its best.pt evaluated
# without and with flip TTA. Results: docs/ENGINEERING.md ("Larger batches with the learning rate scaled").
# Usage: benchmarks/p1_batch_lr_cpu.sh DLCV_ROOT RUNS_DIR [RUNS]   (RUNS default: "base linear sqrt")
set -euo pipefail
d=$1; r=$2; runs=${3:-base linear sqrt}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
for s in $runs; do
  case $s in
    base) extra=(); name=p1_laptop_b256 ;;
    linear|sqrt) extra=(--batch-size 1024 --lr-base-batch 256 --lr-scaling "$s"); name=p1_laptop_b1024_$s ;;
    *) echo "p1_batch_lr_cpu.sh: unknown run $s (base, linear or sqrt)" >&2; exit 2 ;;
  esac
  /usr/bin/time -f "%e s wall, %M KB max RSS" fcnlab classify train --config p1_laptop \
    --data "$d/p1_data/train_50" --val "$d/p1_data/val_50" --val-csv "$d/p1_data/val_gt.csv" \
    "${extra[@]}" --out "$r/$name" 2>&1 | grep -v "step " | tail -n 32
  for tta in none flip; do
    echo "$name, best.pt, tta $tta: $(fcnlab classify eval --ckpt "$r/$name/best.pt" --data "$d/p1_data/val_50" \
      --csv "$d/p1_data/val_gt.csv" --tta "$tta" | grep 'Val Acc')"
  done
done
