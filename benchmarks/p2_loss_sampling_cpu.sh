#!/usr/bin/env bash
# CPU-scale comparison of the P2 losses, rare-class sampling and test-time augmentation, before GPU time.
# ResNet34-FCN8s from scratch, every variant with the same seed and the same budget (STEPS optimizer steps
# of BATCH random CROPxCROP crops from the first TRAIN_TILES training tiles), evaluated (last.pt) on the first
# VAL_TILES validation tiles at full resolution with the course's mIoU. A second seed of the baseline shows
# how much two runs that differ only in their seed disagree.
#
# Usage: benchmarks/p2_loss_sampling_cpu.sh DLCV_ROOT RUNS_DIR
# Environment: FCNLAB (command, default "fcnlab"), PYTHON (default "python"), TRAIN_TILES=200 VAL_TILES=32 CROP=128 BATCH=8 EPOCHS=3,
# VARIANTS (default "ce ce+lovasz ce+rare ce+dice ce-seed1"; also "lovasz", "dice", "ce+median", "unet",
# and any of them as "VARIANT-seedN"), TTA_VARIANTS (flip for
# these, default "ce ce+lovasz ce+rare"), D4_VARIANTS (d4 and multi-scale 0.75,1,1.25 for these, default "ce").
# Results: RUNS_DIR/summary.md (one row per evaluation, rewritten after each one).
set -euo pipefail
d=$1; r=$2
FCNLAB=${FCNLAB:-fcnlab}; PYTHON=${PYTHON:-python}
TRAIN_TILES=${TRAIN_TILES:-200}; VAL_TILES=${VAL_TILES:-32}; CROP=${CROP:-128}; BATCH=${BATCH:-8}; EPOCHS=${EPOCHS:-3}
VARIANTS=${VARIANTS:-"ce ce+lovasz ce+rare ce+dice ce-seed1"}
TTA_VARIANTS=${TTA_VARIANTS:-"ce ce+lovasz ce+rare"}
D4_VARIANTS=${D4_VARIANTS:-"ce"}
mkdir -p "$r/val_subset"
# the first VAL_TILES validation pairs, linked (never copied)
n=0
for f in "$d"/p2_data/validation/*_sat.jpg; do
  [ "$n" -ge "$VAL_TILES" ] && break
  s=$(basename "${f%_sat.jpg}")
  ln -sf "$f" "$r/val_subset/${s}_sat.jpg"
  ln -sf "$d/p2_data/validation/${s}_mask.png" "$r/val_subset/${s}_mask.png"
  n=$((n + 1))
done
t() { /usr/bin/time -f "%e s wall" "$@"; }

train() {  # train VARIANT: ce, lovasz, ce+lovasz, ce+dice (losses), ce+rare (sampling), ce+median (class
  # weights), unet (the ResNet34 U-Net with ce); VARIANT-seedN: the same with seed N (how far two seeds of one
  # variant disagree)
  local v=$1 base=${1%-seed*} extra=()
  [ "$base" != "$v" ] && extra=(--seed "${v##*-seed}")
  local loss=$base
  case $base in
    ce+rare) loss=ce; extra+=(--sampling rare) ;;
    ce+median) loss=ce; extra+=(--class-weights median) ;;
    unet) loss=ce; extra+=(--model unet_resnet34) ;;  # p2_best's model, same budget
  esac
  [ -f "$r/$v/last.pt" ] && return 0
  t $FCNLAB segment train --config p2_fcn8s_resnet34 --data "$d/p2_data/train" \
    --val "$d/p2_data/validation" --pretrained false --limit "$TRAIN_TILES" --val-limit 4 --image-size "$CROP" \
    --batch-size "$BATCH" --epochs "$EPOCHS" --snapshot-epochs "[]" --loss "$loss" --device cpu "${extra[@]}" \
    --out "$r/$v" 2>&1 | tail -n 3
}

evaluate() {  # evaluate VARIANT TTA [SCALES] (skipped when its eval folder is complete: the script resumes)
  local v=$1 tta=$2 scales=${3:-}
  local args=(--tta "$tta") name=eval/val_subset
  [ "$tta" != none ] && name="${name}_tta-$tta"
  [ -n "$scales" ] && { args+=(--scales "$scales"); name="${name}_scales-${scales//,/-}"; }
  [ -f "$r/$v/$name/eval.json" ] && return 0
  t $FCNLAB segment eval --ckpt "$r/$v/last.pt" --data "$r/val_subset" --device cpu "${args[@]}" | tail -n 2
  summary
}

summary() {
  $PYTHON - "$r" <<'EOF'
import json, sys
from pathlib import Path
r = Path(sys.argv[1])
rows = ["| variant | TTA | scales | mIoU | urban | agri | rangeland | forest | water | barren |",
        "|---|---|---|---|---|---|---|---|---|---|"]
for f in sorted(r.glob("*/eval/*/eval.json")):
    e = json.loads(f.read_text())
    iou = e["per_class_iou"]
    rows.append(f"| {f.parts[-4]} | {e.get('tta', 'none')} | {','.join(f'{s:g}' for s in e.get('scales', [1]))} "
                f"| {e['mean_iou']:.4f} | " + " | ".join(f"{v:.4f}" for v in iou) + " |")
(r / "summary.md").write_text("\n".join(rows) + "\n")
EOF
}

for v in $VARIANTS; do train "$v"; evaluate "$v" none; done
for v in $TTA_VARIANTS; do evaluate "$v" flip; done
for v in $D4_VARIANTS; do evaluate "$v" d4; evaluate "$v" none 0.75,1,1.25; done
cat "$r/summary.md"
