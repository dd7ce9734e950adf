"""``fcnlab demo``: the whole homework in miniature, on synthetic data, on the CPU, in about 1.5 minutes.

The demo writes small synthetic data sets in the course's exact formats (:mod:`fcnlab.data.synthetic`)
and then runs every step a user runs, each one through the real command line (``fcnlab.cli.main.main`` with
an argument list, printed as ``$ fcnlab ...`` so it can be copied):

* P1: ``classify train`` -> ``classify eval`` (the seed's ``Val Acc`` line) -> ``classify predict``
  (the ``image_id,label`` CSV) -> ``classify tsne``;
* P2: ``segment train`` of an FCN-32s and an FCN-8s with mask snapshots at a few epochs, ``segment eval``
  (the course's ``class #i`` / ``mean_iou`` lines), ``segment predict`` (``NNNN_mask.png`` files), the
  course-style ``miou`` of the predicted mask files, ``compare`` of the two runs and one ``report`` page.

Model choice. P1 uses **resnet18**, not the seed's vgg16_bn, and P2 compares **fcn32s_resnet34** with
**fcn8s_resnet34**, not the homework's VGG16-BN FCN-32s with ResNet34 FCN-8s (:data:`PAIR_NOTE` says why,
and the summary prints it). The same training, evaluation, prediction and t-SNE code runs either way; one
backbone for both FCNs also isolates what the comparison is about, the skip connections (at 128x128 an
FCN-32s sees a 4x4 grid of scores, an FCN-8s a 16x16 one). ``fcnlab reproduce`` runs the homework's models.

Output folder safety: the demo refuses a folder that holds anything it did not write. A folder written
by an earlier demo carries a ``.fcnlab-demo`` marker that lists the entries the demo made; re-running
into it replaces those entries only, and still refuses if anything else has been added.
"""

from __future__ import annotations

import csv
import json
import math
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fcnlab.errors import ConfigError, DataError, FcnlabError
from fcnlab.runs import read_eval
from fcnlab.runtime.files import atomic_write_text, make_folder

MARKER = ".fcnlab-demo"
#: Why the demo's models are not the homework's VGG16-BN ones (printed in its summary).
PAIR_NOTE = (
    "its FCN-32s has 134M parameters (6x the ResNet34 FCN-8s), so each of its checkpoints (weights and "
    "SGD momentum) is about 1.1 GB, rewritten every epoch: gigabytes of disk and minutes of a 1.5-minute demo"
)
MARKER_FORMAT = "fcnlab-demo"


@dataclass(frozen=True)
class DemoPlan:
    """Sizes and settings of one demo run (:data:`FULL` by default, :data:`QUICK` for a smoke test)."""

    p1_classes: int = 20
    p1_train_per_class: int = 30
    p1_val_per_class: int = 10
    p1_model: str = "resnet18"
    p1_epochs: int = 5
    p1_batch: int = 32
    p2_train_tiles: int = 16
    p2_val_tiles: int = 6  # seed 0: every class 0-5 occurs in these six tiles
    p2_size: int = 128
    p2_models: tuple[str, ...] = ("fcn32s_resnet34", "fcn8s_resnet34")
    p2_epochs: int = 6
    p2_batch: int = 4
    snapshot_epochs: tuple[int, ...] = (1, 3, 6)
    seed: int = 0


#: The default demo: learns visibly (P1 val accuracy around 0.8 for 20 classes; FCN-8s mIoU around 0.4).
FULL = DemoPlan()
#: A seconds-long smoke test of every step (``--quick``): too small to learn much.
QUICK = DemoPlan(
    p1_classes=4,
    p1_train_per_class=8,
    p1_val_per_class=4,
    p1_epochs=1,
    p1_batch=8,
    p2_train_tiles=2,
    p2_val_tiles=2,
    p2_size=64,
    p2_epochs=2,
    p2_batch=2,
    snapshot_epochs=(1, 2),
)


class DemoStepFailed(FcnlabError):
    """A demo step (one ``fcnlab ...`` command) returned a non-zero exit code; its error is printed above."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class Step:
    """One command of the demo: ``fcnlab <argv>``, with a short description."""

    title: str
    argv: list[str]
    seconds: float = 0.0


@dataclass
class DemoLayout:
    """Where the demo puts its data and runs inside the output folder."""

    root: Path
    plan: DemoPlan = field(default_factory=DemoPlan)

    @property
    def p1_data(self) -> Path:
        return self.root / "data" / "p1"

    @property
    def p2_data(self) -> Path:
        return self.root / "data" / "p2"

    @property
    def p1_run(self) -> Path:
        return self.root / f"p1_{self.plan.p1_model}"

    def p2_run(self, model: str) -> Path:
        return self.root / f"p2_{model}"

    @property
    def p2_runs(self) -> list[Path]:
        return [self.p2_run(m) for m in self.plan.p2_models]

    def entries(self) -> list[str]:
        """Top-level names the demo writes (recorded in the marker)."""
        runs = [self.p1_run.name, *[r.name for r in self.p2_runs]]
        return [MARKER, "data", *runs, "compare.md", "report.html", "summary.md"]


# ----------------------------------------------------------------------------------------- folder safety
def _read_marker(root: Path) -> dict[str, Any] | None:
    path = root / MARKER
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) and data.get("format") == MARKER_FORMAT else None


def _is_temp_of(name: str, known: set[str]) -> bool:
    """``.report.html.abc123.html``: a temporary file that an atomic write of a known entry left behind."""
    return name.startswith(".") and any(name.startswith(f".{k}.") for k in known)


def prepare_demo_dir(root: str | Path, layout: DemoLayout) -> Path:
    """Create ``root`` (or clear a previous demo's entries from it) and write the demo marker.

    Refuses, with a :class:`ConfigError` naming the folder and the offending entries, a path that is a
    file, or a folder that holds anything other than what an earlier demo wrote. Nothing is deleted
    unless the marker proves the folder is a demo folder and every entry in it is one of the demo's.
    """
    root = Path(root)
    if root.is_dir():
        present = sorted(p.name for p in root.iterdir())
        if present:
            marker = _read_marker(root)
            if marker is None:
                raise ConfigError(
                    f"--out {root}: folder already holds files ({_preview(present)}) and is "
                    f"not an earlier demo folder; choose a new or empty folder (the demo never "
                    f"deletes other files)"
                )
            known = set(layout.entries()) | {str(n) for n in marker.get("entries", []) if isinstance(n, str)}
            foreign = [n for n in present if (n not in known and not _is_temp_of(n, known)) or (root / n).is_symlink()]
            if foreign:
                raise ConfigError(
                    f"--out {root}: is an earlier demo folder but also holds "
                    f"{_preview(foreign)}, which the demo did not write; move those away or "
                    f"choose another folder"
                )
            for name in present:
                if name == MARKER:
                    continue
                path = root / name
                if path.is_dir():
                    shutil.rmtree(path)
                else:
                    path.unlink()
    make_folder(root)
    atomic_write_text(
        root / MARKER, json.dumps({"format": MARKER_FORMAT, "version": 1, "entries": layout.entries()}, indent=1) + "\n"
    )
    return root


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def _preview(names: list[str], k: int = 5) -> str:
    shown = ", ".join(names[:k])
    return shown + (f" and {len(names) - k} more" if len(names) > k else "")


# --------------------------------------------------------------------------------------------- the steps
def plan_steps(layout: DemoLayout, device: str = "cpu") -> list[Step]:
    """Every ``fcnlab`` command of the demo, in order (data generation comes before them)."""
    plan, d = layout.plan, layout
    p1_train, p1_val, gt = d.p1_data / "train_50", d.p1_data / "val_50", d.p1_data / "val_gt.csv"
    dev = ["--device", device]
    infer = [*dev, "--workers", "0"]  # a few images: worker processes would cost more than they save
    steps = [
        Step(
            f"P1: train {plan.p1_model} for {_plural(plan.p1_epochs, 'epoch')}",
            [
                "classify",
                "train",
                "--data",
                str(p1_train),
                "--val",
                str(p1_val),
                "--val-csv",
                str(gt),
                "--out",
                str(d.p1_run),
                "--model",
                plan.p1_model,
                "--num-classes",
                str(plan.p1_classes),
                "--epochs",
                str(plan.p1_epochs),
                "--batch-size",
                str(plan.p1_batch),
                "--seed",
                str(plan.seed),
                "--cache",
                "memory",
                *dev,
            ],
        ),
        Step(
            "P1: validation accuracy (the seed's printout)",
            ["classify", "eval", "--ckpt", str(d.p1_run), "--data", str(p1_val), "--csv", str(gt), *infer],
        ),
        Step(
            "P1: predictions in the course's image_id,label CSV",
            [
                "classify",
                "predict",
                "--ckpt",
                str(d.p1_run),
                "--images",
                str(p1_val),
                "--out",
                str(d.p1_run / "predictions.csv"),
                *infer,
            ],
        ),
        Step(
            "P1: t-SNE of the penultimate-layer features",
            [
                "classify",
                "tsne",
                "--ckpt",
                str(d.p1_run),
                "--data",
                str(p1_val),
                "--out",
                str(d.p1_run / "tsne.png"),
                *infer,
            ],
        ),
    ]
    snaps = ",".join(str(e) for e in plan.snapshot_epochs if e <= plan.p2_epochs)
    for model, run in zip(plan.p2_models, d.p2_runs, strict=True):
        steps += [
            Step(
                f"P2: train {model} for {_plural(plan.p2_epochs, 'epoch')}, masks at epochs {snaps}",
                [
                    "segment",
                    "train",
                    "--data",
                    str(d.p2_data / "train"),
                    "--val",
                    str(d.p2_data / "validation"),
                    "--out",
                    str(run),
                    "--model",
                    model,
                    "--epochs",
                    str(plan.p2_epochs),
                    "--batch-size",
                    str(plan.p2_batch),
                    "--image-size",
                    str(plan.p2_size),
                    "--snapshot-epochs",
                    snaps,
                    "--seed",
                    str(plan.seed),
                    "--cache",
                    "memory",
                    *dev,
                ],
            ),
            Step(
                f"P2: {model} per-class IoU and mean IoU (the course's printout)",
                ["segment", "eval", "--ckpt", str(run), "--data", str(d.p2_data / "validation"), *infer],
            ),
            Step(
                f"P2: {model} predicted masks (NNNN_mask.png)",
                [
                    "segment",
                    "predict",
                    "--ckpt",
                    str(run),
                    "--images",
                    str(d.p2_data / "validation"),
                    "--out",
                    str(run / "masks"),
                    *infer,
                ],
            ),
        ]
    last = d.p2_runs[-1]
    steps.append(
        Step(
            "P2: the course's evaluator on the predicted mask files",
            ["miou", "--labels", str(d.p2_data / "validation"), "--pred", str(last / "masks")],
        )
    )
    steps.append(
        Step(
            "P2: per-class IoU of the two FCNs side by side",
            ["compare", *[str(r) for r in d.p2_runs], "--out", str(d.root / "compare.md")],
        )
    )
    steps.append(
        Step(
            "one HTML page with every result",
            ["report", str(d.p1_run), *[str(r) for r in d.p2_runs], "--out", str(d.root / "report.html")],
        )
    )
    return steps


def make_data(layout: DemoLayout) -> None:
    """Write the synthetic P1 and P2 sets (course formats) into ``<root>/data``."""
    from fcnlab.data.synthetic import make_classification_data, make_segmentation_data

    plan = layout.plan
    make_classification_data(
        layout.p1_data,
        num_classes=plan.p1_classes,
        train_per_class=plan.p1_train_per_class,
        val_per_class=plan.p1_val_per_class,
        seed=plan.seed,
    )
    make_segmentation_data(
        layout.p2_data, n_train=plan.p2_train_tiles, n_val=plan.p2_val_tiles, size=plan.p2_size, seed=plan.seed
    )


def run_step(
    step: Step,
    number: int,
    total: int,
    debug: bool = False,
    echo: Callable[[str], None] = print,
    what: str = "demo step",
) -> None:
    """Run one step through ``fcnlab.cli.main.main``; raise :class:`DemoStepFailed` on a non-zero exit code."""
    from fcnlab.cli.main import main

    command = "fcnlab " + " ".join(step.argv)
    echo(f"\n[{number}/{total}] {step.title}\n$ {command}")
    sys.stdout.flush()
    t0 = time.perf_counter()
    rc = main((["--debug"] if debug else []) + step.argv)
    step.seconds = time.perf_counter() - t0
    if rc:
        raise DemoStepFailed(
            f"{what} {number}/{total} failed with exit code {rc} (its message is above): {command}", rc
        )
    echo(f"({step.seconds:.1f} s)")


# ------------------------------------------------------------------------------------------------ results
def csv_accuracy(pred_csv: Path, gt_csv: Path) -> float:
    """Share of ``image_id,label`` rows of ``pred_csv`` that agree with the ``filename,label`` CSV."""
    with open(gt_csv, newline="") as f:
        truth = {row["filename"]: int(row["label"]) for row in csv.DictReader(f)}
    with open(pred_csv, newline="") as f:
        rows = list(csv.DictReader(f))
    if not rows:
        raise DataError(f"{pred_csv}: no predictions")
    return sum(truth.get(r["image_id"]) == int(r["label"]) for r in rows) / len(rows)


def majority_miou(confusion: list[list[int]]) -> tuple[float, int]:
    """Course mIoU of predicting the most common labelled class (0-5) everywhere, and that class."""
    rows = [sum(r) for r in confusion]
    total = sum(rows)
    best = max(range(6), key=lambda c: rows[c])
    return (rows[best] / total / 6 if total else 0.0), best


def collect_results(layout: DemoLayout) -> dict[str, Any]:
    """The headline numbers of the demo's runs, read from the files the steps wrote."""
    from fcnlab.data.mask_codec import CLASS_NAMES

    plan = layout.plan
    p1 = read_eval(layout.p1_run)
    out: dict[str, Any] = {
        "p1": {
            "model": plan.p1_model,
            "classes": plan.p1_classes,
            "epochs": plan.p1_epochs,
            "val_acc": float(p1["val_acc"]),
            "chance": 1.0 / plan.p1_classes,
            "csv_acc": csv_accuracy(layout.p1_run / "predictions.csv", layout.p1_data / "val_gt.csv"),
        },
        "p2": [],
    }
    for model, run in zip(plan.p2_models, layout.p2_runs, strict=True):
        ev = read_eval(run)
        base, cls = majority_miou(ev["confusion_matrix"])
        per_class = [float(v) for v in ev["per_class_iou"]]
        present = [v for v in per_class if not math.isnan(v)]
        out["p2"].append(
            {
                "model": model,
                "run": str(run),
                "epochs": plan.p2_epochs,
                "mean_iou": float(ev["mean_iou"]),
                "mean_present": sum(present) / len(present) if present else math.nan,
                "per_class_iou": per_class,
                "baseline": base,
                "baseline_class": CLASS_NAMES[cls],
            }
        )
    return out


def summary_text(layout: DemoLayout, results: dict[str, Any], steps: list[Step], seconds: float) -> str:
    """The closing summary: headline numbers, key files (those that exist) and what to run next."""
    root, plan = layout.root, layout.plan
    p1 = results["p1"]
    lines = [
        f"fcnlab demo finished in {seconds:.0f} s ({len(steps)} commands). Everything is in {root}/",
        "",
        f"  P1  {p1['model']} on {p1['classes']} synthetic classes, {_plural(p1['epochs'], 'epoch')}: "
        f"val accuracy {p1['val_acc']:.4f} (chance {p1['chance']:.4f}); predictions.csv agrees with "
        f"val_gt.csv on {p1['csv_acc']:.1%}",
    ]
    for i, r in enumerate(results["p2"]):
        lead = "  P2  " if i == 0 else "      "
        miou = f"{r['mean_iou']:.4f}"
        if math.isnan(r["mean_iou"]):  # a class absent from the (tiny) validation set
            miou = f"nan (classes absent; over the present ones {r['mean_present']:.4f})"
        lines.append(
            f"{lead}{r['model']}, {_plural(r['epochs'], 'epoch')} on {plan.p2_train_tiles} tiles: "
            f"mean IoU {miou}; '{r['baseline_class']}' everywhere would score {r['baseline']:.4f}"
        )
    files = [
        (root / "report.html", "all results on one page"),
        (layout.p1_run / "metrics.csv", "P1 loss and accuracy per epoch"),
        (layout.p1_run / "eval" / "validation" / "confusion_matrix.png", "P1 confusion matrix"),
        (layout.p1_run / "predictions.csv", "P1 predictions (image_id,label)"),
        (layout.p1_run / "tsne.png", "P1 t-SNE"),
    ]
    for run in layout.p2_runs:
        files += [
            (run / "snapshots" / "all_epochs.png", f"{run.name}: masks at the snapshot epochs"),
            (run / "eval" / "validation" / "per_class_iou.md", f"{run.name}: per-class IoU"),
            (run / "masks", f"{run.name}: predicted NNNN_mask.png files"),
        ]
    files.append((root / "compare.md", "FCN-32s vs FCN-8s, per-class IoU and deltas"))
    shown = [(p, what) for p, what in files if p.exists()]
    width = max(len(str(p)) for p, _ in shown) + 2
    lines += ["", "Key files:"]
    lines += [f"  {str(p) + ('/' if p.is_dir() else ''):<{width}} {what}" for p, what in shown]
    lines += [
        "",
        f"P2 compared {' vs '.join(plan.p2_models)}, not the homework's VGG16-BN FCN-32s vs ResNet34 "
        f"FCN-8s: {PAIR_NOTE}.",
        "",
        "Next, the whole homework on the course data (dlcv/ holds p1_data/ and p2_data/), offline:",
        "  fcnlab reproduce --data dlcv --out runs/homework --no-pretrained                 # a laptop CPU",
        "  fcnlab reproduce --data dlcv --out runs/homework --profile gpu --no-pretrained   # one GPU",
    ]
    return "\n".join(lines)


def run_demo(
    out: str | Path = "runs/demo",
    plan: DemoPlan = FULL,
    device: str = "cpu",
    threads: int = 1,
    debug: bool = False,
    echo: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Run the whole demo into ``out``; print and return the results (also written to ``summary.md``).

    ``threads`` is the number of PyTorch CPU threads during the demo (0: PyTorch's default, one per core);
    the previous setting is restored afterwards. The default, 1, keeps the demo's time predictable: on a
    2-core machine with any other load, two OpenMP threads that spin-wait for each other made the demo
    6x slower (441 s instead of 76 s, measured here), while on an idle machine one thread costs
    little, as the models are small.
    """
    import torch

    if threads < 0:
        raise ConfigError(f"option --threads: must be >= 0, got {threads}")
    previous = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        return _run_demo(Path(out), plan, device, debug, echo)
    finally:
        torch.set_num_threads(previous)


def _run_demo(out: Path, plan: DemoPlan, device: str, debug: bool, echo: Callable[[str], None]) -> dict[str, Any]:
    t0 = time.perf_counter()
    layout = DemoLayout(out, plan)
    prepare_demo_dir(layout.root, layout)
    steps = plan_steps(layout, device)
    total = len(steps) + 1
    echo(
        f"[1/{total}] synthetic data in the course formats: {plan.p1_classes} classes x "
        f"{plan.p1_train_per_class}+{plan.p1_val_per_class} images of 32x32 (P1), {plan.p2_train_tiles}+"
        f"{plan.p2_val_tiles} land-cover tiles of {plan.p2_size}x{plan.p2_size} (P2) -> "
        f"{layout.root / 'data'}"
    )
    t1 = time.perf_counter()
    make_data(layout)
    echo(f"({time.perf_counter() - t1:.1f} s)")
    for i, step in enumerate(steps, start=2):
        run_step(step, i, total, debug, echo)
    results = collect_results(layout)
    seconds = time.perf_counter() - t0
    text = summary_text(layout, results, steps, seconds)
    commands = "\n".join(f"fcnlab {' '.join(s.argv)}" for s in steps)
    atomic_write_text(
        layout.root / "summary.md", f"# fcnlab demo\n\n```\n{text}\n```\n\n## Commands\n\n```\n{commands}\n```\n"
    )
    echo("\n" + text)
    results.update({"seconds": seconds, "steps": [{"argv": s.argv, "seconds": s.seconds} for s in steps]})
    return results
