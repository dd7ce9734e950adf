#!/usr/bin/env bash
# The seed's P2 experiments on a GPU: ResNet34-FCN8s and VGG16-BN-FCN32s, 50-epoch recipes, then the course
# evaluation of each and their comparison. Usage: benchmarks/gpu_p2.sh P2_DATA_DIR RUNS_DIR [EPOCHS_FCN32S]
# (P2_DATA_DIR holds train/ and validation/). MODELS="fcn32s_vgg16" runs one of the two (default: both).
# Offline, both run from scratch (--pretrained false); online, drop that option to start from
# torchvision's ImageNet weights as the seed did.
set -euo pipefail
data=$1; runs=$2; e32=${3:-50}; models=${MODELS:-"fcn8s_resnet34 fcn32s_vgg16"}
fcnlab() { python -m fcnlab "$@"; }
common=(--data "$data/train" --val "$data/validation" --pretrained false --log-every 100)
if [[ " $models " == *" fcn8s_resnet34 "* ]]; then
  start=$(date +%s)
  fcnlab segment train --config p2_fcn8s_resnet34 "${common[@]}" --out "$runs/fcn8s_resnet34"
  echo "fcn8s_resnet34 50 epochs wall: $(( $(date +%s) - start )) s"
  fcnlab segment eval --ckpt "$runs/fcn8s_resnet34/best.pt" --data "$data/validation"
fi
if [[ " $models " == *" fcn32s_vgg16 "* ]]; then
  start=$(date +%s)
  fcnlab segment train --config p2_fcn32s_vgg16 "${common[@]}" --out "$runs/fcn32s_vgg16" \
    --epochs "$e32" --snapshot-epochs "5,$(( e32 / 2 )),$e32"
  echo "fcn32s_vgg16 $e32 epochs wall: $(( $(date +%s) - start )) s"
  fcnlab segment eval --ckpt "$runs/fcn32s_vgg16/best.pt" --data "$data/validation"
fi
if [[ -d "$runs/fcn32s_vgg16" && -d "$runs/fcn8s_resnet34" ]]; then
  fcnlab compare "$runs/fcn32s_vgg16" "$runs/fcn8s_resnet34" || true
fi
