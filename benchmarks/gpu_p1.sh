#!/usr/bin/env bash
# The seed's P1 experiment on a GPU: 50-epoch VGG16-BN recipe, then eval and t-SNE.
# Usage: benchmarks/gpu_p1.sh P1_DATA_DIR RUN_DIR [extra fcnlab options]
# (P1_DATA_DIR holds train_50/, val_50/ and val_gt.csv.)
set -euo pipefail
data=$1; run=$2; shift 2
fcnlab() { python -m fcnlab "$@"; }
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || true
/usr/bin/time -v python -m fcnlab classify train --config p1_vgg16bn \
  --data "$data/train_50" --val "$data/val_50" --val-csv "$data/val_gt.csv" --out "$run" "$@" \
  2> >(grep -E "Elapsed|Maximum resident" >&2)
fcnlab classify eval --ckpt "$run/best.pt" --data "$data/val_50" --csv "$data/val_gt.csv"
fcnlab classify tsne --ckpt "$run/best.pt" --data "$data/val_50" --out "$run/tsne.png"
