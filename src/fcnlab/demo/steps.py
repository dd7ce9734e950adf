"""The demo's commands: :class:`Step` (one ``fcnlab <argv>``) and :func:`plan_steps`, every step in order."""

from __future__ import annotations

from dataclasses import dataclass

from fcnlab.demo.layout import DemoLayout


@dataclass
class Step:
    """One command of the demo: ``fcnlab <argv>``, with a short description."""

    title: str
    argv: list[str]
    seconds: float = 0.0


def _plural(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


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
