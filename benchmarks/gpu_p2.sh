#!/usr/bin/env bash
# The seed's P2 experiments on a GPU: ResNet34-FCN8s and VGG16-BN-FCN32s, 50-epoch recipes, then the course
# evaluation of each and their comparison. Usage: benchmarks/gpu_p2.sh P2_DATA_DIR RUNS_DIR [EPOCHS_FCN32S]
# (P2_DATA_DIR holds train/ and validation/). Offline, both run from scratch (--pretrained false);
# online, drop that option to start from torchvision's ImageNet weights as the seed did.
set -euo pipefail
data=$1; runs=$2; e32=${3:-50}
fcnlab() { python -m fcnlab "$@"; }
common=(--data "$data/train" --val "$data/validation" --pretrained false --log-every 100)
start=$(date +%s)
fcnlab segment train --config configs/p2_fcn8s_resnet34.yaml "${common[@]}" --out "$runs/fcn8s_resnet34"
echo "fcn8s_resnet34 50 epochs wall: $(( $(date +%s) - start )) s"
fcnlab segment eval --ckpt "$runs/fcn8s_resnet34/best.pt" --data "$data/validation"
start=$(date +%s)
fcnlab segment train --config configs/p2_fcn32s_vgg16.yaml "${common[@]}" --out "$runs/fcn32s_vgg16" \
  --epochs "$e32" --snapshot-epochs "5,$(( e32 / 2 )),$e32"
echo "fcn32s_vgg16 $e32 epochs wall: $(( $(date +%s) - start )) s"
fcnlab segment eval --ckpt "$runs/fcn32s_vgg16/best.pt" --data "$data/validation"
fcnlab compare "$runs/fcn32s_vgg16" "$runs/fcn8s_resnet34" || true
