#!/usr/bin/env bash
# Does a P1 run beside a P2 run on one GPU raise the total throughput? Trains the seed's P1 recipe and the
# ResNet34-FCN8s recipe each alone for SECONDS_EACH seconds, then both at once for as long, and compares the
# median epoch training img/s (timing.csv): the "sum of shares" (P1 shared / P1 alone + P2 shared / P2 alone)
# is above 1 when sharing the GPU gets more work done than running one after the other. That is the measured
# choice for gpu_reproduce.sh's PARALLEL setting.
# Usage: benchmarks/gpu_share.sh DATA OUT   (DATA: the dlcv folder; writes OUT/share.json and prints a table)
# Settings: SECONDS_EACH (default 60), EXTRA_ARGS (added to both trainings, e.g. "--device cpu --limit 64"
# for a check on the CPU), PYTHON (default python3), WORK (default mktemp -d).
set -uo pipefail
{
[[ $# -eq 2 ]] || { sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
data=$1; out=$2
repo=$(cd "$(dirname "$0")/.." && pwd)
PY=${PYTHON:-python3}
export PYTHONPATH="$repo/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
secs=${SECONDS_EACH:-60}
work=${WORK:-$(mktemp -d "${TMPDIR:-/tmp}/fcnlab_share.XXXXXX")}
export FCNLAB_CACHE="$work/cache"
read -r -a extra <<< "${EXTRA_ARGS:-}"
[[ -d $data/p1_data && -d $data/p2_data ]] || { echo "gpu_share: $data: expected p1_data/ and p2_data/" >&2; exit 2; }
mkdir -p "$out" "$work" || exit 2
recipe() { local f; for f in "$repo/src/fcnlab/configs/$1.yaml" "$repo/configs/$1.yaml"; do [[ -f $f ]] && { echo "$f"; return; }; done; }
p1() {  # p1 RUN_DIR: the seed's P1 recipe for SECONDS_EACH seconds (500 epochs: the clock ends it)
  timeout -s TERM "$secs" "$PY" -m fcnlab classify train --config "$(recipe p1_vgg16bn)" --epochs 500 \
    --data "$data/p1_data/train_50" --val "$data/p1_data/val_50" --val-csv "$data/p1_data/val_gt.csv" \
    --resident true --log-every 100 "${extra[@]}" --out "$1" > "$1.log" 2>&1
}
p2() {
  timeout -s TERM "$secs" "$PY" -m fcnlab segment train --config "$(recipe p2_fcn8s_resnet34)" --epochs 500 \
    --pretrained false --snapshot-epochs "[]" --data "$data/p2_data/train" --val "$data/p2_data/validation" \
    --resident true --log-every 100 "${extra[@]}" --out "$1" > "$1.log" 2>&1
}
p1 "$work/p1_alone"; p2 "$work/p2_alone"
p1 "$work/p1_shared" & p2 "$work/p2_shared" & wait
"$PY" - "$work" "$out/share.json" <<'EOF'
import csv, json, statistics, sys
from pathlib import Path
work, dest = Path(sys.argv[1]), Path(sys.argv[2])
def rate(run):
    rows = list(csv.DictReader(open(run / "timing.csv"))) if (run / "timing.csv").is_file() else []
    rates = [float(r["train_img_per_s"]) for r in rows[1:]]  # the first epoch holds cuDNN autotuning
    return (statistics.median(rates) if rates else None), len(rows)
res = {k: dict(zip(("img_per_s", "epochs"), rate(work / k))) for k in ("p1_alone", "p2_alone", "p1_shared", "p2_shared")}
shares = [res[f"{p}_shared"]["img_per_s"] / res[f"{p}_alone"]["img_per_s"]
          for p in ("p1", "p2") if res[f"{p}_shared"]["img_per_s"] and res[f"{p}_alone"]["img_per_s"]]
res["sum_of_shares"] = round(sum(shares), 3) if len(shares) == 2 else None
dest.write_text(json.dumps(res, indent=1) + "\n")
print("| run | median epoch img/s (training) | epochs |\n|---|---|---|")
for k in ("p1_alone", "p2_alone", "p1_shared", "p2_shared"):
    print(f"| {k} | {res[k]['img_per_s']} | {res[k]['epochs']} |")
print(f"sum of shares: {res['sum_of_shares']} (> 1: running P1 beside P2 raises the total throughput)")
EOF
exit 0
}
