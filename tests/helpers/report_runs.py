"""Fake run folders for the report / compare tests: the files training and eval write, without training."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import yaml
from PIL import Image

SEG_HEADER = "epoch,lr,train_loss,train_acc,val_loss,val_acc,val_miou,iou_0,iou_1,iou_2,iou_3,iou_4,iou_5"
CLS_HEADER = "epoch,lr,train_loss,train_acc,val_loss,val_acc"


def png(path: Path, size: tuple[int, int] = (24, 16), colour: tuple[int, int, int] = (200, 30, 30)) -> Path:
    """A small solid-colour PNG."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)
    return path


def seg_row(epoch: int, ious: Sequence[float]) -> str:
    values = [float(v) for v in ious]
    present = [v for v in values if not np.isnan(v)]
    miou = sum(present) / len(present)
    cells = [epoch, 0.01, 1.0 / epoch, 0.5, 1.1 / epoch, 0.6, f"{miou:.6f}"] + [f"{v:.6f}" for v in values]
    return ",".join(str(c) for c in cells)


def make_run(
    root: Path,
    name: str,
    task: str = "segment",
    epochs_ious: Sequence[Sequence[float]] | None = None,
    accs: Sequence[float] = (0.5, 0.7, 0.6),
    eval_json: dict | None = None,
    extras: bool = True,
    model: str | None = None,
) -> Path:
    """Write a run folder ``root/name`` as ``fcnlab <task> train`` (and optionally ``eval``) would."""
    run = root / name
    run.mkdir(parents=True)
    model = model or ("fcn8s_resnet34" if task == "segment" else "vgg16_bn")
    (run / "config.yaml").write_text(
        yaml.safe_dump({"task": task, "model": model, "epochs": 3, "snapshot_epochs": [1, 3]}, sort_keys=False)
    )
    if task == "segment":
        epochs_ious = epochs_ious or [
            [0.5, 0.8, 0.2, 0.6, 0.7, 0.4],
            [0.6, 0.85, 0.3, 0.7, 0.75, 0.5],
            [0.55, 0.8, 0.25, 0.65, 0.7, 0.45],
        ]
        rows = [seg_row(e + 1, ious) for e, ious in enumerate(epochs_ious)]
        (run / "metrics.csv").write_text("\n".join([SEG_HEADER, *rows]) + "\n")
    else:
        rows = [
            f"{e + 1},0.05,{2.0 / (e + 1):.4f},{a - 0.1:.4f},{1.5 / (e + 1):.4f},{a:.6f}" for e, a in enumerate(accs)
        ]
        (run / "metrics.csv").write_text("\n".join([CLS_HEADER, *rows]) + "\n")
    n = len(rows)
    timing = ["epoch,train_seconds,epoch_seconds,train_img_per_s"]
    timing += [f"{e + 1},{10.0 + e:.2f},{12.0 + e:.2f},{180.0 + e:.2f}" for e in range(n)]
    (run / "timing.csv").write_text("\n".join(timing) + "\n")
    (run / "env.json").write_text(
        json.dumps(
            {
                "python": "3.11.7",
                "torch": "2.15.0",
                "cuda": True,
                "gpu": "NVIDIA H100",
                "cuda_version": "13.2",
                "cpu_count": 16,
            }
        )
    )
    (run / "model.txt").write_text(
        f"{model.upper()}(\n  (conv1): Conv2d(3, 64, kernel_size=(3, 3))\n"
        f"  (head): Linear(in_features=4096, out_features=<50>)\n)\n"
    )
    if eval_json is not None:
        (run / "eval").mkdir()
        (run / "eval" / "eval.json").write_text(json.dumps(eval_json))
    if extras:
        if task == "segment":
            png(run / "snapshots" / "epoch_001.png", colour=(255, 255, 0))
            png(run / "snapshots" / "epoch_003.png", colour=(0, 255, 255))
            png(run / "snapshots" / "all_epochs.png", (40, 16), colour=(0, 0, 255))
        else:
            png(run / "tsne.png", colour=(30, 30, 200))
        png(run / "eval" / "confusion_matrix.png", colour=(10, 120, 10))
    return run
