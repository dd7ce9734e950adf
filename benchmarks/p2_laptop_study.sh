#!/usr/bin/env bash
# The P2 loss / sampling / EMA / TTA study at the laptop budget, where models learn: each variant is a laptop
# recipe (RECIPE, default p2_laptop: tiles reduced to 128x128, the full training set) trained for EPOCHS
# epochs with each seed of SEEDS, its best.pt scored at full resolution on the validation tiles (the course's
# mIoU and rangeland's IoU), and the baseline's also with flip, D4 and multi-scale TTA. PARALLEL runs train (and
# then PARALLEL evaluations run) at once, one torch thread each (2 on an idle 2-core machine).
#
# Variants: ce (the recipe with uniform sampling, its epochs without a time budget), ce+lovasz, lovasz-ft (ce,
# then FT more epochs with the Lovasz loss at a tenth of the learning rate: --resume --change-settings; it starts
# from a copy of the ce run of its seed when that has finished, so list ce first), median (median-frequency class
# weights), rare (repeat-factor sampling of tiles with rangeland or water), no-ema.
# Usage: benchmarks/p2_laptop_study.sh DLCV_ROOT RUNS_DIR
# Environment: RECIPE, EPOCHS (20), FT (5), SEEDS ("0 1"), VARIANTS ("ce ce+lovasz median rare no-ema lovasz-ft"),
# PARALLEL (1), EXTRA (more training options for every run, e.g. "--limit 64 --val-limit 8" for a smoke test).
# Results: RUNS_DIR/summary.tsv (one row per evaluation).
set -euo pipefail
d=$1; r=$2
RECIPE=${RECIPE:-p2_laptop}; EPOCHS=${EPOCHS:-20}; FT=${FT:-5}; SEEDS=${SEEDS:-"0 1"}
VARIANTS=${VARIANTS:-"ce ce+lovasz median rare no-ema lovasz-ft"}; PARALLEL=${PARALLEL:-1}; EXTRA=${EXTRA:-}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
mkdir -p "$r"
train=(--config "$RECIPE" --data "$d/p2_data/train" --val "$d/p2_data/validation" --epochs "$EPOCHS"
       --snapshot-epochs "[]" --sampling none --time-budget 0 $EXTRA)

options() {  # the training options of a variant
  case $1 in
    ce|lovasz-ft) ;;
    ce+lovasz) echo --loss ce+lovasz ;;
    median) echo --class-weights median ;;
    rare) echo --sampling rare ;;
    no-ema) echo --no-ema ;;
    *) echo "p2_laptop_study.sh: unknown variant $1" >&2; exit 2 ;;
  esac
}

run_one() {  # variant seed
  local v=$1 s=$2 run="$r/$1-seed$2"
  [ -f "$run/done" ] && return 0
  if [ "$v" = lovasz-ft ] && [ -f "$r/ce-seed$s/done" ]; then
    rm -rf "$run" && cp -r "$r/ce-seed$s" "$run" && rm -f "$run/done" "$run"/row_*.tsv && rm -rf "$run"/eval_*
  else
    # shellcheck disable=SC2046
    fcnlab segment train "${train[@]}" $(options "$v") --seed "$s" --out "$run" > "$run.log" 2>&1 ||
      { echo "$v seed $s: training failed, see $run.log" >&2; return 1; }
  fi
  if [ "$v" = lovasz-ft ]; then
    local lr; lr=$(awk '/^lr:/ {print $2 / 10}' "$run/config.yaml")
    fcnlab segment train --resume "$run" --epochs $((EPOCHS + FT)) --loss lovasz --lr "$lr" --warmup-epochs 0 \
      --change-settings >> "$run.log" 2>&1
  fi
  touch "$run/done"
}

score() {  # variant seed tta [scales]: one row of the summary, in RUN/row_TTA.tsv
  local run="$r/$1-seed$2" extra=() name="$3${4:+_scales}"
  [ -n "${4:-}" ] && extra=(--scales "$4")
  [ -f "$run/row_$name.tsv" ] && return 0
  local out
  out=$(fcnlab segment eval --ckpt "$run/best.pt" --data "$d/p2_data/validation" --tta "$3" "${extra[@]}" \
        --out "$run/eval_$name" 2> "$run/eval_$name.log") || { echo "$1 seed $2 tta $name: failed, see $run/eval_$name.log" >&2; return 1; }
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$1" "$2" "$3${4:+ scales $4}" \
    "$(echo "$out" | awk '/mean_iou/ {print $2}')" "$(echo "$out" | awk '/class #2/ {print $4}')" \
    "$(awk -F, 'NR > 1 && $7 > b {b = $7; e = $1} END {print e}' "$run/metrics.csv")" > "$run/row_$name.tsv"
}

# a failed run or evaluation is reported and leaves its row out; the others go on
throttle() { while [ "$(jobs -rp | wc -l)" -ge "$PARALLEL" ]; do wait -n || true; done; }

jobs_list=()
for v in $VARIANTS; do for s in $SEEDS; do jobs_list+=("$v $s"); done; done
for job in "${jobs_list[@]}"; do
  # shellcheck disable=SC2086
  run_one $job &
  throttle
done
wait || true
scores=()
for job in "${jobs_list[@]}"; do scores+=("$job none"); done
for s in $SEEDS; do scores+=("ce $s flip" "ce $s d4" "ce $s none 0.75,1,1.25"); done
for job in "${scores[@]}"; do
  # shellcheck disable=SC2086
  score $job &
  throttle
done
wait || true
printf 'variant\tseed\ttta\tmIoU (full resolution)\trangeland IoU\tbest epoch\n' > "$r/summary.tsv"
for job in "${scores[@]}"; do
  # shellcheck disable=SC2086
  set -- $job
  cat "$r/$1-seed$2/row_$3${4:+_scales}.tsv" >> "$r/summary.tsv" 2>/dev/null || true
done
column -t -s $'\t' "$r/summary.tsv"
