#!/usr/bin/env bash
# Split the course's dlcv folder (about 150 MB) into tar parts that the device tool can carry one call at a time
# (it sends at most 64 MiB a call, the repository included). Each part goes into its own folder under DEST
# (DEST/00/dlcv.tar.part-00, DEST/01/...). benchmarks/gpu_reproduce.sh reassembles them when its DATA folder
# holds the parts instead of p1_data/ and p2_data/.
# Usage: benchmarks/gpu_data_parts.sh DLCV DEST [SIZE]   (part size as split -b takes it, default 50m; DEST e.g.
# .gpudata, which git ignores)
# On the device: one call per part carrying DEST/NN (an ignored path left there by an earlier call stays while
# the machine is warm), the last one running `benchmarks/gpu_reproduce.sh DEST $OUT`.
set -euo pipefail
[[ $# -ge 2 ]] || { sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2; }
src=$1; dest=$2; size=${3:-50m}
[[ -d $src/p1_data && -d $src/p2_data ]] || { echo "gpu_data_parts: $src: expected p1_data/ and p2_data/" >&2; exit 2; }
mkdir -p "$dest"
tmp=$(mktemp -d "$dest/.split.XXXXXX")
tar -C "$(dirname "$(readlink -f "$src")")" -chf - "$(basename "$(readlink -f "$src")")" --transform 's,^[^/]*,dlcv,' \
  | split -d -a 2 -b "$size" - "$tmp/dlcv.tar.part-"
(cd "$tmp" && for f in dlcv.tar.part-*; do echo "$f $(stat -c %s "$f")"; done) > "$tmp/manifest"
for f in "$tmp"/dlcv.tar.part-*; do
  n=${f##*-}; mkdir -p "$dest/$n"; mv "$f" "$dest/$n/"
  cp "$tmp/manifest" "$dest/$n/dlcv.tar.parts"  # every part names all parts, so a missing one is noticed
done
rm "$tmp/manifest"; rmdir "$tmp"
du -sh "$dest"/*/
