#!/usr/bin/env python3
"""Pack, unpack and tabulate the run folders of ``benchmarks/gpu_reproduce.sh``.

Sub-commands:

* ``pack WORK OUT``: on the GPU machine. Packs each run folder under ``WORK/runs`` (and the script's own
  files, ``WORK/reproduce``) into at most ``--max-files`` ``.tar.gz`` files of at most ``--max-mib`` MiB
  under ``OUT``, without checkpoints. P1 runs share one archive (they are small), every other run gets its
  own; a file over ``--max-file-mib`` is left out, and an archive still over the limit drops its largest
  files, each named in the run's ``DROPPED.txt``. ``--only NAME`` repacks the archive of one run (called as
  each run ends, so a command killed later still returns the runs that finished).
* ``unpack FILES... --dest docs/results``: extracts archives (from ``OUT`` as fetched back) into
  ``DEST/<hardware>/<run>/``, the hardware named from each run's ``env.json`` (``h200``, ``h100``, ``cpu``;
  ``-dry-run`` appended for dry runs), then regenerates the results table of ``--readme`` unless
  ``--no-table``.
* ``table --results docs/results --readme README.md``: regenerates the table between
  ``<!-- results:begin -->`` and ``<!-- results:end -->`` from the run folders alone, so no number in it
  is typed by hand; recipes of ``benchmarks/gpu_recipes.tsv`` with no run yet get a "not yet run" row with
  their command.
* ``subset DATA DEST``: a tiny copy (symbolic links) of a course-layout data folder, evenly spread over
  the files, for the script's ``--dry-run``.

Only the standard library is used, so it runs under any python3 (the GPU machine's too).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import math
import os
import re
import shutil
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BEGIN, END = "<!-- results:begin -->", "<!-- results:end -->"
NAME_RE = re.compile(r"^[A-Za-z0-9._-]+$")
SKIP_SUFFIXES = (".pt", ".pth", ".ckpt")  # checkpoints never leave the GPU machine
SUMMARY = "reproduce"  # the script's own folder (log, schedule, environment) and its archive's name


class UsageError(Exception):
    """Bad input to this script: one line, exit code 2."""


# ------------------------------------------------------------------------------------------------ pack
def _packable(path: Path) -> bool:
    name = path.name
    return not (name.endswith(SKIP_SUFFIXES) or ".pt." in name or name.startswith(".tmp"))


def _files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.is_symlink() and _packable(p))


def _task_of(run: Path) -> str:
    """``classify`` or ``segment`` from the run's ``config.yaml`` (a plain line read: no YAML library)."""
    cfg = run / "config.yaml"
    if cfg.is_file():
        for line in cfg.read_text().splitlines():
            if line.startswith("task:"):
                return line.split(":", 1)[1].strip()
    return "segment"


def archive_name(run: Path) -> str:
    """The archive a run goes into: all P1 runs share ``p1.tar.gz``; others get ``<run>.tar.gz``."""
    if run.name == SUMMARY:
        return f"{SUMMARY}.tar.gz"
    return "p1.tar.gz" if _task_of(run) == "classify" else f"{run.name}.tar.gz"


def _write_archive(path: Path, members: list[tuple[Path, str]], notes: dict[str, list[str]]) -> int:
    """Write ``members`` (file, name in the archive) plus each run's DROPPED.txt atomically; return bytes."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-", suffix=".tar.gz")
    os.close(fd)
    try:
        with tarfile.open(tmp, "w:gz", compresslevel=6) as tar:
            for src, arc in members:
                tar.add(src, arcname=arc, recursive=False)
            for run, lines in notes.items():
                if lines:
                    data = ("\n".join(lines) + "\n").encode()
                    info = tarfile.TarInfo(f"{run}/DROPPED.txt")
                    info.size = len(data)
                    tar.addfile(info, io.BytesIO(data))
        os.chmod(tmp, 0o644)  # mkstemp makes 0600
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path.stat().st_size


def pack_archive(path: Path, runs: list[Path], max_bytes: int, max_file_bytes: int) -> list[str]:
    """Pack ``runs`` into ``path`` within ``max_bytes``; returns the notes about files left out."""
    members: list[tuple[Path, str]] = []
    notes: dict[str, list[str]] = {r.name: [] for r in runs}
    for run in runs:
        for f in _files(run):
            size = f.stat().st_size
            rel = f"{run.name}/{f.relative_to(run).as_posix()}"
            if size > max_file_bytes:
                notes[run.name].append(
                    f"{rel}: {size / 2**20:.1f} MiB, over the {max_file_bytes / 2**20:.0f} MiB "
                    f"per-file limit; left on the GPU machine"
                )
            else:
                members.append((f, rel))
    while True:
        size = _write_archive(path, members, notes)
        if size <= max_bytes or not members:
            break
        biggest = max(members, key=lambda m: m[0].stat().st_size)
        members.remove(biggest)
        run_name = biggest[1].split("/", 1)[0]
        notes[run_name].append(
            f"{biggest[1]}: {biggest[0].stat().st_size / 2**20:.1f} MiB, left out so the archive "
            f"fits {max_bytes / 2**20:.0f} MiB"
        )
    if size > max_bytes:
        raise UsageError(f"{path}: {size} bytes even without files, over the limit of {max_bytes}")
    return [line for lines in notes.values() for line in lines]


def run_folders(work: Path) -> list[Path]:
    """Run folders under ``WORK/runs`` (sorted) and ``WORK/reproduce`` if present."""
    runs = sorted(p for p in (work / "runs").glob("*") if p.is_dir()) if (work / "runs").is_dir() else []
    if (work / SUMMARY).is_dir():
        runs.append(work / SUMMARY)
    return runs


def record_sharing(runs: list[Path]) -> None:
    """Set each run.json's ``sharing`` to the number of other runs whose time on the device overlapped its own
    (``started_s``..``ended_s``), once all have ended (at its start a run cannot know who comes next)."""
    spans = {}
    for r in runs:
        info = _read_json(r / "run.json")
        if "started_s" in info and "ended_s" in info:
            spans[r] = (info, info["started_s"], info["ended_s"])
    for r, (info, s0, e0) in spans.items():
        info["sharing"] = sum(1 for o, (_, s1, e1) in spans.items() if o != r and s1 < e0 and s0 < e1)
        (r / "run.json").write_text(json.dumps(info, indent=1) + "\n")


def pack(
    work: Path, out: Path, max_files: int = 8, max_mib: float = 16, max_file_mib: float = 6, only: str | None = None
) -> list[Path]:
    """Pack the run folders of ``work`` into archives under ``out`` (see the module's docstring)."""
    out.mkdir(parents=True, exist_ok=True)
    runs = run_folders(work)
    if only is None:
        record_sharing(runs)
    for r in runs:
        if not NAME_RE.match(r.name):
            raise UsageError(f"{r}: run folder names may hold only letters, digits, '.', '_' and '-'")
    groups: dict[str, list[Path]] = {}
    for r in runs:
        groups.setdefault(archive_name(r), []).append(r)
    if len(groups) > max_files:  # merge the surplus into the last allowed archive
        names = list(groups)
        keep, extra = names[: max_files - 1], names[max_files - 1 :]
        merged = [r for n in extra for r in groups[n]]
        groups = {n: groups[n] for n in keep}
        groups["more.tar.gz"] = merged
    if only is not None:
        groups = {n: rs for n, rs in groups.items() if any(r.name == only for r in rs)}
        if not groups:
            raise UsageError(f"{work}: no run folder named {only}")
    written = []
    for name, rs in groups.items():
        notes = pack_archive(out / name, rs, int(max_mib * 2**20), int(max_file_mib * 2**20))
        for line in notes:
            print(f"note: {line}", flush=True)
        written.append(out / name)
    if only is None:  # stale archives of an earlier grouping would push the count over the limit
        for p in out.glob("*.tar.gz"):
            if p not in written:
                p.unlink()
    return written


# ---------------------------------------------------------------------------------------------- unpack
def hardware_slug(env: dict, dry_run: bool = False) -> str:
    """``h200`` for "NVIDIA H200", ``h100`` for "NVIDIA H100 80GB HBM3", ``cpu`` without a GPU."""
    gpu = env.get("gpu") if env.get("cuda") else None
    if gpu:
        words = [w for w in re.split(r"[^a-z0-9]+", gpu.lower()) if w and w not in ("nvidia", "geforce", "tesla")]
        slug = words[0] if words else "gpu"
    else:
        slug = "cpu"
    return f"{slug}-dry-run" if dry_run else slug


def _safe_members(tar: tarfile.TarFile, archive: Path) -> list[tarfile.TarInfo]:
    members = []
    for m in tar.getmembers():
        p = Path(m.name)
        if p.is_absolute() or ".." in p.parts or not (m.isfile() or m.isdir()):
            raise UsageError(f"{archive}: member {m.name!r} is not a plain relative file; not unpacking it")
        members.append(m)
    return members


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def unpack(archives: list[Path], dest: Path) -> list[Path]:
    """Extract ``archives`` into ``dest/<hardware>/<run>/``; returns the run folders written."""
    written: list[Path] = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for archive in archives:
            if not archive.is_file():
                raise UsageError(f"{archive}: no such file; give the .tar.gz files the GPU command wrote to $OUT")
            try:
                with tarfile.open(archive, "r:gz") as tar:
                    members = _safe_members(tar, archive)
                    if hasattr(tarfile, "data_filter"):
                        tar.extractall(tmp, members=members, filter="data")
                    else:  # Python < 3.12: the members were checked above
                        tar.extractall(tmp, members=members)
            except tarfile.TarError as e:
                raise UsageError(f"{archive}: not a readable .tar.gz ({e})") from None
        folders = sorted(p for p in tmp.iterdir() if p.is_dir())
        runs = [p for p in folders if p.name != SUMMARY]
        slugs = {}
        for r in runs:
            info = _read_json(r / "run.json")
            slugs[r.name] = hardware_slug(_read_json(r / "env.json"), bool(info.get("dry_run")))
        summary_slug = next(iter(sorted(set(slugs.values()))), None)
        for p in folders:
            slug = slugs.get(p.name, summary_slug)
            if slug is None:  # a summary alone: named from its own record
                info = _read_json(p / "reproduce.json")
                slug = hardware_slug(info.get("env", {}), bool(info.get("dry_run")))
            target = dest / slug / p.name
            if target.exists():
                shutil.rmtree(target)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copytree(p, target)
            written.append(target)
    return written


# ----------------------------------------------------------------------------------------------- table
@dataclass
class Recipe:
    """One line of ``benchmarks/gpu_recipes.tsv``."""

    name: str
    need_s: int
    required: bool


def read_recipes(path: Path) -> list[Recipe]:
    """Recipes of the reproduction script, in order (comments and blank lines skipped)."""
    recipes = []
    for lineno, line in enumerate(path.read_text().splitlines(), start=1):
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) != 3 or not parts[1].isdigit() or parts[2] not in ("yes", "no"):
            raise UsageError(f"{path}:{lineno}: expected 'recipe seconds yes|no', got {line!r}")
        recipes.append(Recipe(parts[0], int(parts[1]), parts[2] == "yes"))
    return recipes


def _read_csv(path: Path) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _yaml_scalars(path: Path) -> dict[str, str]:
    """Top-level ``key: value`` lines of a config.yaml (enough for task, model, epochs, pretrained)."""
    out = {}
    if path.is_file():
        for line in path.read_text().splitlines():
            m = re.match(r"^([a-z_]+):\s*(.*)$", line)
            if m:
                out[m.group(1)] = m.group(2).strip().strip("'\"")
    return out


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 60} min {seconds % 60} s" if seconds >= 60 else f"{seconds} s"


def _hardware(env: dict, info: dict) -> str:
    if env.get("cuda") and env.get("gpu"):
        text = f"1x {env['gpu']}"
        others = info.get("sharing", 0)
        if others:
            text += f", shared with {others} other run{'s' if others > 1 else ''}"
        return text
    return f"CPU ({env.get('cpu_count', '?')} cores)" + (", dry run" if info.get("dry_run") else "")


def run_row(run: Path, link_base: Path) -> dict[str, str] | None:
    """One table row from a run folder's own files, or None if it is not a training run (links relative to
    ``link_base``, the README's folder)."""
    cfg = _yaml_scalars(run / "config.yaml")
    metrics = _read_csv(run / "metrics.csv")
    if not cfg or not metrics:
        return None
    task = cfg.get("task", "classify")
    key = "val_acc" if task == "classify" else "val_miou"
    values = [(float(r[key]), int(r["epoch"])) for r in metrics if r.get(key) not in (None, "", "nan")]
    best, best_epoch = max(values, key=lambda v: (v[0], -v[1])) if values else (math.nan, 0)
    planned = int(cfg.get("epochs", len(metrics)))
    info = _read_json(run / "run.json")
    # the evaluation on the run's own validation data (eval/validation; eval/ in folders of an older fcnlab)
    ev = _read_json(run / "eval" / "validation" / "eval.json") or _read_json(run / "eval" / "eval.json")
    label = "acc" if task == "classify" else "mIoU"
    final = ev.get("val_acc") if task == "classify" else ev.get("mean_iou")
    done = len(metrics)
    if final is not None and not math.isnan(final):
        result = f"**{label} {final:.4f}** (`eval` of best.pt, epoch {best_epoch})"
    else:
        result = f"**{label} {best:.4f}** (best epoch {best_epoch}, metrics.csv)"
    epochs = f"{done} of {planned} epochs" if done < planned else f"{planned} epoch{'s' if planned != 1 else ''}"
    if info.get("status") == "partial":
        epochs += ", cut by the time budget"
    if float(cfg.get("time_budget", "0") or 0) > 0:  # train --time-budget: the epochs are what fitted
        epochs += f" (`--time-budget {float(cfg['time_budget']):g}`)"
    pretrained = cfg.get("pretrained", "false").lower() == "true"
    what = f"{cfg.get('model', '?')}, {'ImageNet weights' if pretrained else 'from scratch'}, {epochs}"
    if int(cfg.get("limit", "0") or 0):
        what += f", first {cfg['limit']} training {'images' if task == 'classify' else 'tiles'}"
    if task == "segment" and int(cfg.get("input_size", "0") or 0):
        what += f", tiles reduced to {cfg['input_size']} px"
    elif task == "segment" and cfg.get("image_size", "512") != "512":
        what += f", {cfg['image_size']} px crops"
    timing = _read_csv(run / "timing.csv")
    if info.get("train_wall_s") is not None:
        time_text = f"{_duration(info['train_wall_s'])} wall for `train`"
    elif timing:
        time_text = f"{_duration(sum(float(r['epoch_seconds']) for r in timing))} (sum of epochs)"
    else:
        time_text = "-"
    if timing:
        rates = [float(r["train_img_per_s"]) for r in timing[1:]] or [float(timing[0]["train_img_per_s"])]
        rate = sorted(rates)[len(rates) // 2]
        time_text += (
            f"; {rate:,.0f} img/s training (median epoch)"
            if rate >= 10
            else f"; {rate:.1f} img/s training (median epoch)"
        )
    command = info.get("command") or (
        (run / "command.txt").read_text().strip() if (run / "command.txt").is_file() else ""
    )
    return {
        "task": "P1" if task == "classify" else "P2",
        "recipe": info.get("recipe", run.name),
        "what": what,
        "result": result,
        "hardware": _hardware(_read_json(run / "env.json"), info),
        "time": time_text,
        "command": f"`{command}`" if command else "-",
        "folder": Path(os.path.relpath(run, link_base)).as_posix(),
    }


def _hardware_order(name: str) -> tuple[int, str]:
    return (2 if name.startswith("cpu") else 0, "".join(chr(255 - ord(c)) for c in name))  # GPUs, newest first


def results_table(results: Path, recipes: list[Recipe], include_dry_runs: bool = False, link_base: Path = REPO) -> str:
    """The Markdown results table from every run folder under ``results`` plus "not yet run" rows."""
    rows: list[dict[str, str]] = []
    seen: set[str] = set()
    hw_dirs = (
        sorted((p for p in results.iterdir() if p.is_dir()), key=lambda p: _hardware_order(p.name))
        if results.is_dir()
        else []
    )
    for hw in hw_dirs:
        if hw.name.endswith("-dry-run") and not include_dry_runs:
            continue
        for run in sorted(p for p in hw.iterdir() if p.is_dir()):
            row = run_row(run, link_base)
            if row is None:
                continue
            rows.append(row)
            if not hw.name.startswith("cpu"):
                seen.add(row["recipe"])
    rows.sort(key=lambda r: (r["task"],))  # stable: hardware order kept inside each task
    lines = [
        "| task | recipe | model, training | val metric | hardware | time | command | files |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['task']} | {r['recipe']} | {r['what']} | {r['result']} | {r['hardware']} | {r['time']} "
            f"| {r['command']} | [{Path(r['folder']).name}]({r['folder']}/) |"
        )
    for rec in recipes:
        if rec.name in seen:
            continue
        task = "P1" if rec.name.startswith("p1") else "P2"
        # the README must not change when a recipe file lands, so whether it exists yet is not said here
        lines.append(
            f"| {task} | {rec.name} | - | not yet run | 1x H200 | - | "
            f"`RECIPES={rec.name} benchmarks/gpu_reproduce.sh $D $OUT` | - |"
        )
    return "\n".join(lines) + "\n"


def replace_table(readme: Path, table: str) -> None:
    """Put ``table`` between the markers of ``readme`` (which must hold both, once each, in order)."""
    text = readme.read_text()
    if text.count(BEGIN) != 1 or text.count(END) != 1 or text.index(BEGIN) > text.index(END):
        raise UsageError(f"{readme}: needs one '{BEGIN}' line and one '{END}' line after it around the table")
    head, rest = text.split(BEGIN, 1)
    _, tail = rest.split(END, 1)
    new = (
        f"{head}{BEGIN}\n<!-- generated by scripts/gpu_results.py table: edit the run folders, not this -->\n"
        f"{table}{END}{tail}"
    )
    fd, tmp = tempfile.mkstemp(dir=readme.parent, prefix=".tmp-")
    with os.fdopen(fd, "w") as f:
        f.write(new)
    os.replace(tmp, readme)


# ---------------------------------------------------------------------------------------------- subset
def _spread(items: list[Path], n: int) -> list[Path]:
    if n >= len(items):
        return items
    step = len(items) / n
    return [items[int(i * step)] for i in range(n)]


def subset(data: Path, dest: Path, p1_train: int, p1_val: int, p2_train: int, p2_val: int) -> None:
    """Links to an evenly spread few files of each split of a course-layout folder (``p1_data``, ``p2_data``)."""
    p1, p2 = data / "p1_data", data / "p2_data"
    if not p1.is_dir() or not p2.is_dir():
        raise UsageError(f"{data}: expected p1_data/ and p2_data/ (the course layout); give the dlcv folder")
    for split, n in (("train_50", p1_train), ("val_50", p1_val)):
        files = sorted((p1 / split).glob("*.png"), key=lambda f: (f.stem.split("_")[1].zfill(6), f.name))
        target = dest / "p1_data" / split
        target.mkdir(parents=True, exist_ok=True)
        for f in _spread(files, n):
            (target / f.name).symlink_to(f.resolve())
    kept = {f.name for f in (dest / "p1_data" / "val_50").iterdir()}
    with open(p1 / "val_gt.csv", newline="") as src:
        rows = list(csv.reader(src))
    with open(dest / "p1_data" / "val_gt.csv", "w", newline="") as out:
        csv.writer(out, lineterminator="\n").writerows([rows[0]] + [r for r in rows[1:] if r and r[0] in kept])
    for split, n in (("train", p2_train), ("validation", p2_val)):
        tiles = sorted((p2 / split).glob("*_sat.*"))
        target = dest / "p2_data" / split
        target.mkdir(parents=True, exist_ok=True)
        for t in _spread(tiles, n):
            mask = t.with_name(t.name.split("_sat")[0] + "_mask.png")
            for f in (t, mask):
                (target / f.name).symlink_to(f.resolve())


# ------------------------------------------------------------------------------------------------- CLI
def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit code."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("pack", help="pack WORK's run folders into archives under OUT")
    a.add_argument("work", type=Path)
    a.add_argument("out", type=Path)
    a.add_argument("--max-files", type=int, default=8)
    a.add_argument("--max-mib", type=float, default=16)
    a.add_argument("--max-file-mib", type=float, default=6)
    a.add_argument("--only", help="repack only the archive holding this run")
    u = sub.add_parser("unpack", help="extract archives into DEST/<hardware>/<run>/ and regenerate the table")
    u.add_argument("archives", nargs="+", type=Path)
    u.add_argument("--dest", type=Path, default=REPO / "docs" / "results")
    u.add_argument("--readme", type=Path, default=REPO / "README.md")
    u.add_argument("--no-table", action="store_true", help="only extract")
    u.add_argument("--include-dry-runs", action="store_true", help="also tabulate *-dry-run folders")
    t = sub.add_parser("table", help="regenerate README's results table from the run folders")
    t.add_argument("--results", type=Path, default=REPO / "docs" / "results")
    t.add_argument("--readme", type=Path, default=REPO / "README.md")
    t.add_argument("--include-dry-runs", action="store_true")
    t.add_argument("--print", action="store_true", help="print the table instead of editing the README")
    s = sub.add_parser("subset", help="tiny linked copy of a course-layout data folder (for --dry-run)")
    s.add_argument("data", type=Path)
    s.add_argument("dest", type=Path)
    s.add_argument("--p1", type=int, nargs=2, default=(100, 50), metavar=("TRAIN", "VAL"))
    s.add_argument("--p2", type=int, nargs=2, default=(4, 2), metavar=("TRAIN", "VAL"))
    args = p.parse_args(argv)
    recipes_file = REPO / "benchmarks" / "gpu_recipes.tsv"
    try:
        if args.cmd == "pack":
            for f in pack(args.work, args.out, args.max_files, args.max_mib, args.max_file_mib, args.only):
                print(f"packed {f} ({f.stat().st_size / 2**20:.2f} MiB)")
        elif args.cmd == "unpack":
            for f in unpack(args.archives, args.dest):
                print(f"unpacked {f}")
            if not args.no_table:
                replace_table(
                    args.readme,
                    results_table(args.dest, read_recipes(recipes_file), args.include_dry_runs, args.readme.parent),
                )
                print(f"regenerated the results table of {args.readme}")
        elif args.cmd == "table":
            table = results_table(args.results, read_recipes(recipes_file), args.include_dry_runs, args.readme.parent)
            if args.print:
                print(table, end="")
            else:
                replace_table(args.readme, table)
                print(f"regenerated the results table of {args.readme}")
        else:
            subset(args.data, args.dest, *args.p1, *args.p2)
    except UsageError as e:
        print(f"gpu_results: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
