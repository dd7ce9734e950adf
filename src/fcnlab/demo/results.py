"""The demo's results: headline numbers read from the files its steps wrote, and the closing summary."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

from fcnlab.demo.layout import DemoLayout
from fcnlab.demo.plan import PAIR_NOTE
from fcnlab.demo.steps import Step, _plural
from fcnlab.errors import DataError
from fcnlab.runs import read_eval


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
