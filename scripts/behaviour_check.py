"""Fingerprint what fcnlab does, to show that a refactoring changed no behaviour.

``python scripts/behaviour_check.py record DIR`` trains both tasks for 2 epochs on tiny synthetic data
(``--deterministic --device cpu``), evaluates and predicts with each run (with and without TTA), and writes
into ``DIR`` one text file per fact: each run's ``metrics.csv``, its ``config.yaml`` (paths replaced by their
role), a SHA-256 per checkpoint tensor, the eval outputs (``eval.json`` and stdout) and predictions, and
the ``--help`` text of every command. ``python scripts/behaviour_check.py compare OLD NEW`` prints the files
that differ and exits 1 if any does. Run ``record`` before a change and after it, then ``compare``:

    OMP_NUM_THREADS=1 PYTHONPATH=src python scripts/behaviour_check.py record /tmp/before
    ... change the code ...
    OMP_NUM_THREADS=1 PYTHONPATH=src python scripts/behaviour_check.py record /tmp/after
    python scripts/behaviour_check.py compare /tmp/before /tmp/after

Timing columns and files (``timing.csv``, ``env.json``, seconds in logs) are left out: they differ run to run.
"""

from __future__ import annotations

import argparse
import contextlib
import difflib
import hashlib
import io
import json
import sys
import tempfile
from pathlib import Path

#: (command words) whose ``--help`` is recorded; sub-actions are found from the parser itself.
HELP_COMMANDS = ("classify", "segment", "miou", "compare", "demo", "bench", "report", "export")
#: Output keys that hold times or machine facts rather than results.
VOLATILE_KEYS = {
    "seconds",
    "time",
    "elapsed",
    "created",
    "wall_s",
    "images_per_s",
    "host",
    "env",
    "when",
    "provenance",
    "started",
    "finished",
    "duration_s",
    "mtime",  # the checkpoint's modification time in eval.json's provenance
    "mtime_ns",
    "git_commit",
}


def run_cli(argv: list[str]) -> tuple[int, str]:
    """Run ``fcnlab argv`` in this process; return the exit code and what it printed (stdout + stderr)."""
    from fcnlab.cli.main import main

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(buf):
        try:
            rc = main(argv)
        except SystemExit as e:  # --help exits through argparse
            rc = int(e.code or 0)
    return rc, buf.getvalue()


def scrub(text: str, tmp: Path) -> str:
    """Replace the temporary folder by ``TMP`` and drop ``(1.2s)``-style timings from log lines."""
    import re

    text = text.replace(str(tmp), "TMP")
    text = re.sub(r"\(\d+(\.\d+)?s(, ETA \d+s)?\)", "(Ts)", text)
    return re.sub(r"\d+(\.\d+)? ?(img|images)/s", "N img/s", text)


def drop_volatile(value: object) -> object:
    """``value`` without the keys of :data:`VOLATILE_KEYS` (recursively)."""
    if isinstance(value, dict):
        return {k: drop_volatile(v) for k, v in value.items() if k not in VOLATILE_KEYS}
    if isinstance(value, list):
        return [drop_volatile(v) for v in value]
    return value


def tensor_hashes(path: Path) -> str:
    """One line per tensor of the checkpoint at ``path``: its key path, shape, dtype and SHA-256."""
    import torch

    lines: list[str] = []

    def walk(prefix: str, value: object) -> None:
        if isinstance(value, torch.Tensor):
            data = value.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes()
            lines.append(f"{prefix} {tuple(value.shape)} {value.dtype} {hashlib.sha256(data).hexdigest()[:16]}")
        elif isinstance(value, dict):
            for k in sorted(value, key=str):
                walk(f"{prefix}.{k}", value[k])
        elif isinstance(value, (list, tuple)):
            for i, v in enumerate(value):
                walk(f"{prefix}[{i}]", v)
        elif prefix.split(".")[1] not in ("config", "history", "rng"):
            lines.append(f"{prefix} = {value!r}")

    walk("ckpt", torch.load(path, map_location="cpu", weights_only=True))
    return "\n".join(lines) + "\n"


def help_texts() -> dict[str, str]:
    """``--help`` of ``fcnlab`` and of every command and action, by command line."""
    from fcnlab.cli.main import build_parser

    out = {"fcnlab": run_cli(["--help"])[1]}
    for name in HELP_COMMANDS:
        out[name] = run_cli([name, "--help"])[1]
        parser = build_parser(name)
        commands = next(a for a in parser._actions if a.dest == "command").choices
        assert isinstance(commands, dict)
        sub = commands[name]
        actions = [a for a in sub._actions if getattr(a, "choices", None) and isinstance(a.choices, dict)]
        for action in actions[0].choices if actions else {}:
            out[f"{name} {action}"] = run_cli([name, action, "--help"])[1]
    return out


def record(out: Path) -> None:
    """Write the fingerprint files into ``out``."""
    import os

    from fcnlab.data.synthetic import make_classification_data, make_segmentation_data

    out.mkdir(parents=True, exist_ok=True)
    for name, text in help_texts().items():
        (out / f"help {name}.txt").write_text(text)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        os.environ["FCNLAB_CACHE"] = str(tmp / "cache")
        p1 = make_classification_data(tmp / "p1", num_classes=3, train_per_class=4, val_per_class=2)
        p2 = make_segmentation_data(tmp / "p2", n_train=4, n_val=2, size=64)
        common = ["--epochs", "2", "--deterministic", "--device", "cpu", "--workers", "0"]
        runs = {
            "classify": (
                [
                    "--data",
                    str(p1 / "train_50"),
                    "--val",
                    str(p1 / "val_50"),
                    "--model",
                    "airnet",
                    "--num-classes",
                    "3",
                    "--batch-size",
                    "4",
                ],
                p1 / "val_50",
                ("none", "flip"),
            ),
            "segment": (
                [
                    "--data",
                    str(p2 / "train"),
                    "--val",
                    str(p2 / "validation"),
                    "--model",
                    "fcn8s_lite",
                    "--batch-size",
                    "2",
                    "--image-size",
                    "64",
                ],
                p2 / "validation",
                ("none", "flip", "d4"),
            ),
            "segment_lovasz": (
                [
                    "--data",
                    str(p2 / "train"),
                    "--val",
                    str(p2 / "validation"),
                    "--model",
                    "fcn32s_lite",
                    "--batch-size",
                    "2",
                    "--image-size",
                    "32",
                    "--loss",
                    "ce+lovasz",
                    "--eval-batch-size",
                    "1",
                ],
                p2 / "validation",
                ("none",),
            ),
        }
        for name, (options, val, modes) in runs.items():
            task = name.split("_")[0]
            run = tmp / f"run_{name}"
            rc, log = run_cli([task, "train", "--out", str(run), *options, *common])
            (out / f"{name} train.log").write_text(f"rc {rc}\n{scrub(log, tmp)}")
            (out / f"{name} metrics.csv").write_text((run / "metrics.csv").read_text())
            (out / f"{name} config.yaml").write_text(scrub((run / "config.yaml").read_text(), tmp))
            for ckpt in ("best.pt", "last.pt"):
                (out / f"{name} {ckpt}.txt").write_text(tensor_hashes(run / ckpt))
            for mode in modes:
                ev = tmp / f"eval_{name}_{mode}"
                rc, log = run_cli(
                    [
                        task,
                        "eval",
                        "--ckpt",
                        str(run),
                        "--data",
                        str(val),
                        "--out",
                        str(ev),
                        "--tta",
                        mode,
                        "--device",
                        "cpu",
                        "--workers",
                        "0",
                    ]
                )
                (out / f"{name} eval {mode}.log").write_text(f"rc {rc}\n{scrub(log, tmp)}")
                for path in sorted(ev.rglob("*")) if ev.is_dir() else []:
                    target = out / f"{name} eval {mode} {path.relative_to(ev).as_posix().replace('/', '_')}"
                    if path.suffix == ".json":
                        data = drop_volatile(json.loads(path.read_text()))
                        target.write_text(scrub(json.dumps(data, indent=1, sort_keys=True), tmp))
                    elif path.suffix in (".md", ".csv", ".txt"):
                        target.write_text(scrub(path.read_text(), tmp))
            pred = tmp / f"pred_{name}"
            pred_args = ["--out", str(pred / "pred.csv")] if task == "classify" else ["--out", str(pred)]
            rc, log = run_cli(
                [
                    task,
                    "predict",
                    "--ckpt",
                    str(run),
                    "--images",
                    str(val),
                    *pred_args,
                    "--device",
                    "cpu",
                    "--workers",
                    "0",
                ]
            )
            (out / f"{name} predict.log").write_text(f"rc {rc}\n{scrub(log, tmp)}")
            for path in sorted(pred.rglob("*")) if pred.is_dir() else []:
                if path.is_file():
                    digest = hashlib.sha256(path.read_bytes()).hexdigest()
                    with (out / f"{name} predict files.txt").open("a") as f:
                        f.write(f"{path.relative_to(pred).as_posix()} {digest}\n")


def compare(old: Path, new: Path) -> int:
    """Print the fingerprint files that differ between ``old`` and ``new``; 1 if any does, else 0."""
    names = sorted({p.name for p in old.iterdir()} | {p.name for p in new.iterdir()})
    bad = 0
    for name in names:
        a, b = old / name, new / name
        if not a.is_file() or not b.is_file():
            print(f"only in {'new' if b.is_file() else 'old'}: {name}")
            bad += 1
        elif a.read_text() != b.read_text():
            bad += 1
            print(f"differs: {name}")
            sys.stdout.writelines(
                list(difflib.unified_diff(a.read_text().splitlines(True), b.read_text().splitlines(True), n=1))[:40]
            )
    print(f"{len(names)} files compared, {bad} differ")
    return 1 if bad else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="action", required=True)
    sub.add_parser("record").add_argument("dir", type=Path)
    cmp = sub.add_parser("compare")
    cmp.add_argument("old", type=Path)
    cmp.add_argument("new", type=Path)
    args = parser.parse_args()
    if args.action == "record":
        record(args.dir)
        return 0
    return compare(args.old, args.new)


if __name__ == "__main__":
    sys.exit(main())
