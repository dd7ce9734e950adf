#!/usr/bin/env bash
# CPU-scale real-data runs for the README's results table (2-core laptop budget).
# Usage: benchmarks/cpu_runs.sh DLCV_ROOT RUNS_DIR
set -euo pipefail
d=$1; r=$2
t() { /usr/bin/time -f "%e s wall, %M KB max RSS" "$@"; }
# P1: the seed's VGG16-BN recipe, from scratch, 1 epoch (cosine over 1 epoch) on all 20,000 training images.
t fcnlab classify train --config p1_vgg16bn --data "$d/p1_data/train_50" --val "$d/p1_data/val_50" \
  --val-csv "$d/p1_data/val_gt.csv" --epochs 1 --warmup-epochs 0.2 --out "$r/p1_vgg16bn_cpu"
fcnlab classify eval --ckpt "$r/p1_vgg16bn_cpu/best.pt" --data "$d/p1_data/val_50" --csv "$d/p1_data/val_gt.csv" | head -3
# P2: both seed models from scratch on 256x256 crops of 200 training tiles, 2 epochs, validated on the
# first 100 validation tiles during training; the final eval uses all 257 full tiles.
for m in fcn8s_resnet34 fcn32s_vgg16; do
  t fcnlab segment train --config "p2_${m}" --data "$d/p2_data/train" --val "$d/p2_data/validation" \
    --pretrained false --image-size 256 --batch-size 4 --limit 200 --val-limit 100 --epochs 2 --snapshot-epochs 1,2 --out "$r/${m}_cpu"
  fcnlab segment eval --ckpt "$r/${m}_cpu/best.pt" --data "$d/p2_data/validation"
done
fcnlab compare "$r/fcn32s_vgg16_cpu" "$r/fcn8s_resnet34_cpu"
