#!/usr/bin/env bash
# `fcnlab reproduce` on a lent GPU machine: this wrapper adds only what that machine needs (its time budget, data
# that arrives in parts, runs side by side, results packed for the trip back). On your own GPU run
# `fcnlab reproduce --data DLCV --out runs/homework --profile gpu` instead.
# Each recipe is one `fcnlab reproduce --recipes NAME --budget ...` (train, eval, t-SNE): the seed's P1 recipe,
# both P2 seed models from scratch (masks at epochs 5/25/50), then as many of the other recipes of
# benchmarks/gpu_recipes.tsv as the time budget allows. Every run's outputs except checkpoints are packed into
# at most 8 .tar.gz files of at most 16 MiB under OUT (what the lent GPU machine sends back); unpack them here
# with `python scripts/gpu_results.py unpack OUT/*.tar.gz`, which also regenerates the README's results table.
#
# Usage: benchmarks/gpu_reproduce.sh [--dry-run] DATA OUT
#   DATA  the course's dlcv folder (p1_data/, p2_data/), or a folder holding the dlcv.tar.part-NN files of
#         benchmarks/gpu_data_parts.sh (reassembled under WORK first)
#   OUT   where the archives go ($OUT on the device machine)
#   --dry-run  the same end to end on the CPU on a tiny linked subset of DATA (1-2 epochs, 64 px P2 crops)
# Settings (environment):
#   RECIPES    recipes to run, in order (default: all of benchmarks/gpu_recipes.tsv); a recipe is
#              src/fcnlab/configs/NAME.yaml
#   BUDGET_S   wall-clock budget of the whole command in seconds (default 540; dry run 900)
#   PARALLEL   runs at a time on the one GPU (default 3: the three seed runs side by side; dry run 1).
#              Not measured on an H200 yet; the H100 shared two P2 runs at no loss.
#   P1_ARGS, P2_ARGS  extra KEY=VALUE training settings for every P1 / P2 run (e.g. "compile=true")
#   MIN_RUN_S  no run starts with fewer seconds left than this (default 90)
#   WORK       scratch folder for run folders, checkpoints and the decoded-data cache (default: mktemp -d)
#   PYTHON     the interpreter (default python3)
set -uo pipefail
{  # the whole script is read before it runs, so editing the file meanwhile cannot derail a run
dry=0
if [[ ${1:-} == --dry-run ]]; then dry=1; shift; fi
if [[ $# -ne 2 ]]; then
  sed -n '2,/^set -uo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2
  exit 2
fi
data=$1; out=$2
repo=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-python3}
export PYTHONPATH="$repo/src${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
work=${WORK:-$(mktemp -d "${TMPDIR:-/tmp}/fcnlab_reproduce.XXXXXX")}
if (( dry )); then budget=${BUDGET_S:-900}; parallel=${PARALLEL:-1}; else budget=${BUDGET_S:-540}; parallel=${PARALLEL:-3}; fi
pack_reserve=20   # seconds kept for the last packing
min_run=${MIN_RUN_S:-90}  # no run starts with less time left than this
fail() { echo "gpu_reproduce: error: $*" >&2; exit 2; }
[[ $budget =~ ^[0-9]+$ && $min_run =~ ^[0-9]+$ && $parallel =~ ^[1-9][0-9]*$ ]] \
  || fail "BUDGET_S, MIN_RUN_S and PARALLEL must be whole numbers (PARALLEL >= 1)"
start=$(date +%s); deadline=$(( start + budget ))
mkdir -p "$work/runs" "$work/reproduce" "$work/logs" "$out" || exit 2
export FCNLAB_CACHE="$work/cache"
cores=$(getconf _NPROCESSORS_ONLN)
# runs side by side share the host's cores (decoding, evaluation, t-SNE) instead of each taking them all
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$(( cores / parallel > 0 ? cores / parallel : 1 ))}
summary=$work/reproduce
log() { echo "[$(( $(date +%s) - start ))s] $*" | tee -a "$summary/log.txt"; }

# ------------------------------------------------------------------------------------------------- data
if [[ ! -d $data/p1_data ]]; then
  mapfile -t parts < <(find "$data" -name 'dlcv.tar.part-*' -type f -printf '%f\t%p\n' 2>/dev/null | sort | cut -f2)
  if (( ${#parts[@]} )); then
    manifest=$(find "$data" -name dlcv.tar.parts -type f | head -1)
    while read -r part size; do  # every part listed, at its size: else say which are missing
      found=$(printf '%s\n' "${parts[@]}" | grep "/$part\$" | head -1)
      [[ -n $found && $(stat -c %s "$found") == "$size" ]] || fail "$data: data part $part is missing or \
incomplete (a device call that carried it may have gone to a machine given back since); carry it again"
    done < "${manifest:-/dev/null}"
    log "reassembling ${#parts[@]} data parts into $work/data"
    mkdir -p "$work/data" && cat "${parts[@]}" | tar -x -C "$work/data" || fail "the data parts under $data do not form one tar"
    data=$work/data/dlcv
  fi
fi
[[ -d $data/p1_data && -d $data/p2_data ]] || fail "$data: expected p1_data/ and p2_data/ (the course's dlcv folder) or dlcv.tar.part-NN files"
p1_extra=(); p2_extra=(); dev=()  # KEY=VALUE training settings (`fcnlab reproduce --set`)
if (( dry )); then
  "$PY" "$repo/scripts/gpu_results.py" subset "$data" "$work/data_subset" --p1 60 30 --p2 4 2 || fail "could not link a subset of $data"
  data=$work/data_subset
  dev=(--device cpu)
  p1_extra=(epochs=1 batch_size=16 warmup_epochs=0 log_every=1)
  p2_extra=(epochs=2 batch_size=2 image_size=64 snapshot_epochs=1,2 snapshot_tiles=1 log_every=1)
fi
read -r -a p1_user <<< "${P1_ARGS:-}"; read -r -a p2_user <<< "${P2_ARGS:-}"

# --------------------------------------------------------------------------------------------- recipes
declare -A need required
order=()
while read -r name secs req; do
  [[ -z $name || $name == \#* ]] && continue
  need[$name]=$secs; required[$name]=$req; order+=("$name")
done < "$repo/benchmarks/gpu_recipes.tsv"
if [[ -n ${RECIPES:-} ]]; then read -r -a order <<< "$RECIPES"; fi

# ------------------------------------------------------------------------------------------ environment
{
  echo "command: $0 $([[ $dry == 1 ]] && echo --dry-run) $1 $2"
  echo "settings: BUDGET_S=$budget PARALLEL=$parallel RECIPES=${order[*]} P1_ARGS=${P1_ARGS:-} P2_ARGS=${P2_ARGS:-}"
  echo "commit: $(git -C "$repo" rev-parse HEAD 2>/dev/null || echo unknown)"
  date -u +"start: %Y-%m-%dT%H:%M:%SZ"
  if command -v nvidia-smi > /dev/null; then
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv 2>&1
  else
    echo "nvidia-smi: not installed"
  fi
  "$PY" -c 'import torch, torchvision, platform; print("python", platform.python_version(), "torch", torch.__version__,
"torchvision", torchvision.__version__, "cuda", torch.version.cuda, "gpu",
torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)' 2>&1
  echo "cpu cores: $cores, OMP_NUM_THREADS=$OMP_NUM_THREADS"
} > "$summary/env.txt"
cat "$summary/env.txt"
printf 'recipe\tstatus\tstarted_s\tended_s\tsharing\tnote\n' > "$summary/schedule.tsv"

# ---------------------------------------------------------------------------------------------- one run
recipe_file() {  # the shipped recipe src/fcnlab/configs/NAME.yaml, or nothing
  local f="$repo/src/fcnlab/configs/$1.yaml"
  if [[ -f $f ]]; then echo "$f"; fi
}

run_one() {  # run_one NAME SHARING: `fcnlab reproduce` of one recipe, record run.json, pack; in the background
  local name=$1 sharing=$2 cfg run="$work/runs/$1" task extra sets=() kv t0 t1 rc erc=1 left status train_s
  cfg=$(recipe_file "$name")
  task=$(sed -n 's/^task:[[:space:]]*\([a-z]*\).*/\1/p' "$cfg" | head -1)
  if [[ $task == classify ]]; then extra=("${p1_extra[@]}" "${p1_user[@]}"); else task=segment; extra=("${p2_extra[@]}" "${p2_user[@]}"); fi
  for kv in resident=true log_every=100 "${extra[@]}"; do sets+=(--set "$kv"); done
  t0=$(date +%s)
  left=$(( deadline - t0 - pack_reserve ))
  log "start $name ($task, ${left} s left, $sharing other run(s) on the device)"
  # the machine's budget is reproduce's --budget (it cuts training with a resumable checkpoint and evaluates);
  # timeout only backs it up
  timeout -k 30 -s TERM $(( left + 20 )) "$PY" -m fcnlab reproduce --data "$data" --out "$work" --recipes "$cfg" \
    --no-pretrained --budget "$(awk -v s="$left" 'BEGIN { print s / 60 }')" --skip masks,compare,report \
    "${dev[@]}" "${sets[@]}" > "$work/logs/$name.train.log" 2>&1
  rc=$?
  t1=$(date +%s)
  train_s=$(sed -n 's/.*"seconds": \([0-9]*\).*/\1/p' "$work/.fcnlab-reproduce/train-$name.done" 2>/dev/null)
  [[ -n $train_s ]] && t1=$(( t0 + train_s ))  # train alone, without the evaluation after it
  if [[ -f $work/.fcnlab-reproduce/train-$name.done ]]; then status=done
  elif [[ -f $run/last.pt ]]; then status=partial
  else status=failed; fi
  [[ -f $work/.fcnlab-reproduce/eval-$name.done ]] && erc=0
  log "$name: reproduce exit $rc ($status) after $(( t1 - t0 )) s"
  mkdir -p "$run"
  cp "$work/logs/$name.train.log" "$run/train.log"
  local reproduce="RECIPES=$name benchmarks/gpu_reproduce.sh$([[ $dry == 1 ]] && echo ' --dry-run') \$D \$OUT"
  NAME=$name TASK=$task STATUS=$status RC=$rc ERC=$erc T0=$t0 T1=$t1 TEND=$(date +%s) SHARING=$sharing \
    DRY=$dry PARALLEL_SET=$parallel CMD="$reproduce" START=$start "$PY" - "$run/run.json" <<'EOF'
import json, os, sys
e = os.environ
json.dump({"recipe": e["NAME"], "task": e["TASK"], "status": e["STATUS"], "train_rc": int(e["RC"]),
           "eval_rc": int(e["ERC"]), "train_wall_s": int(e["T1"]) - int(e["T0"]),
           "run_wall_s": int(e["TEND"]) - int(e["T0"]), "started_s": int(e["T0"]) - int(e["START"]),
           "ended_s": int(e["TEND"]) - int(e["START"]),
           "sharing": int(e["SHARING"]), "parallel": int(e["PARALLEL_SET"]), "dry_run": e["DRY"] == "1",
           "command": e["CMD"]}, open(sys.argv[1], "w"), indent=1)
EOF
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$status" $(( t0 - start )) $(( $(date +%s) - start )) "$sharing" \
    "train exit $rc, eval exit $erc" >> "$summary/schedule.tsv"
  "$PY" "$repo/scripts/gpu_results.py" pack "$work" "$out" --only "$name" >> "$summary/log.txt" 2>&1 \
    || log "$name: packing failed (see $summary/log.txt)"
}

# --------------------------------------------------------------------------------------------- schedule
log "budget ${budget} s, ${parallel} run(s) at a time, recipes: ${order[*]}, work folder $work"
for name in "${order[@]}"; do
  if [[ -z $(recipe_file "$name") ]]; then
    log "skip $name: no recipe file src/fcnlab/configs/$name.yaml"
    printf '%s\tskipped\t-\t-\t-\tno recipe file %s.yaml\n' "$name" "$name" >> "$summary/schedule.tsv"
    continue
  fi
  while (( $(jobs -rp | wc -l) >= parallel )); do wait -n; done
  left=$(( deadline - $(date +%s) - pack_reserve ))
  n=${need[$name]:-300}
  if [[ ${required[$name]:-no} != yes ]] && (( left < n )); then
    log "not started $name: needs about $n s, $left s left"
    printf '%s\tnot started\t-\t-\t-\tneeds %s s, %s s left\n' "$name" "$n" "$left" >> "$summary/schedule.tsv"
    continue
  fi
  if (( left < min_run )); then
    log "not started $name: only $left s left"
    printf '%s\tnot started\t-\t-\t-\t%s s left\n' "$name" "$left" >> "$summary/schedule.tsv"
    continue
  fi
  run_one "$name" "$(jobs -rp | wc -l)" &
  sleep 1  # the next run's start is logged after this one's
done
wait
log "all runs ended; wall $(( $(date +%s) - start )) s"
"$PY" "$repo/scripts/gpu_results.py" pack "$work" "$out" 2>&1 | tee -a "$summary/log.txt"
"$PY" "$repo/scripts/gpu_results.py" pack "$work" "$out" --only reproduce > /dev/null  # with the lines above
ls -l "$out"
log "done in $(( $(date +%s) - start )) s; archives in $out"
exit 0
}
