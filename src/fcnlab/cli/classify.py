"""``fcnlab classify train|eval|predict|tsne``: the P1 classifier."""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING

from fcnlab.cli.common import (
    add_device,
    add_train_parser,
    add_tta,
    check_output_dir,
    check_output_file,
    note,
    positive_batch,
)
from fcnlab.data.images import real_path
from fcnlab.errors import ConfigError
from fcnlab.runs import eval_writes, evaluation_dir, record_command, write_eval

if TYPE_CHECKING:  # pragma: no cover
    from fcnlab.infer.predictor import Predictor


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("classify", help="P1: VGG16-BN / ResNet image classifiers")
    s = p.add_subparsers(dest="action", metavar="ACTION")
    s.required = True
    add_train_parser(
        s,
        "classify",
        "fcnlab classify train --config p1_vgg16bn --data p1_data/train_50 --val p1_data/val_50 --out runs/p1",
    )
    e = s.add_parser("eval", help="validation accuracy of a checkpoint (the seed's 'Val Acc' line)")
    e.add_argument("--ckpt", required=True, help="checkpoint file or run folder")
    e.add_argument("--data", required=True, help="folder of {label}_{index}.png images")
    e.add_argument("--csv", help="optional filename,label CSV (e.g. val_gt.csv)")
    e.add_argument(
        "--out",
        help="folder for eval.json and the plots (default: RUN/eval/NAME beside the checkpoint, "
        "NAME after the data and options: validation, val_50_tta-flip ...)",
    )
    add_tta(e, "classify")
    add_device(e)
    e.set_defaults(func=run_eval)
    pr = s.add_parser("predict", help="write the course's image_id,label CSV for a folder of images")
    pr.add_argument("--ckpt", required=True)
    pr.add_argument("--images", required=True, help="folder of .png/.jpg images (no labels needed)")
    pr.add_argument("--out", required=True, help="CSV file to write")
    pr.add_argument(
        "--scores",
        action="store_true",
        help="add the columns confidence (softmax probability of the label) and top5 (the five "
        "likeliest labels); the course's grader reads image_id,label only",
    )
    add_tta(pr, "classify")
    add_device(pr)
    pr.set_defaults(func=run_predict)
    t = s.add_parser("tsne", help="t-SNE of the penultimate-layer features, coloured by class")
    t.add_argument("--ckpt", required=True)
    t.add_argument("--data", required=True, help="folder of {label}_{index}.png images")
    t.add_argument("--out", required=True, help="PNG to write (features and embedding go to the same name .npz)")
    t.add_argument("--seed", type=int, default=0)
    add_tta(t, "classify")
    add_device(t)
    t.set_defaults(func=run_tsne)


def run_eval(args: argparse.Namespace) -> int:
    from fcnlab.data.classification import scan_folder
    from fcnlab.evaluate.folders import classification_confusion
    from fcnlab.evaluate.record import data_record, evaluation_record, is_own_validation
    from fcnlab.infer.predictor import load_predictor
    from fcnlab.runtime.provenance import command_entry
    from fcnlab.tasks.metrics import per_class_accuracy

    pred = load_predictor(args.ckpt, args.device, task="classify", tta=args.tta)
    own = is_own_validation(args.data, pred.ckpt.get("config", {}))
    out_dir = (
        check_output_dir(args.out, [args.data])
        if args.out
        else evaluation_dir(pred.run_dir, args.data, own, pred.tta, checkpoint=pred.path.name)
    )
    print("===> prepare data loader ...", flush=True)
    files, labels = scan_folder(args.data, need_labels=True, csv_path=args.csv, num_classes=pred.cfg.num_classes)
    print("Validation...", flush=True)
    mat, acc, top5 = classification_confusion(pred, files, labels, _batch(args, pred), args.workers)
    print(f"Val Acc: {acc:.6f}")
    print(f"Top-5 Acc: {top5:.6f}")
    per_class = per_class_accuracy(mat)
    for c, a in enumerate(per_class):
        print(f"class {c:2d} : {a:.4f}  ({int(mat[c].sum())} images)")
    from fcnlab.report import viz

    shown = "" if pred.tta == "none" else f" (TTA {pred.tta})"
    data = {
        **data_record(args.data, int(mat.sum()), "images", own),
        "labels_csv": str(Path(args.csv).resolve()) if args.csv else None,
    }
    record = evaluation_record(
        "classify",
        pred.path,
        pred.ckpt,
        data,
        pred.tta,
        (1.0,),
        {
            "val_acc": acc,
            "top5_acc": top5,
            "images": int(mat.sum()),
            "per_class_acc": [float(a) for a in per_class],
            "confusion_matrix": mat.tolist(),
        },
    )
    with eval_writes(out_dir, given=args.out is not None):
        viz.plot_confusion_matrix(
            mat,
            [str(i) for i in range(len(mat))],
            out_dir / "confusion_matrix.png",
            title=f"{pred.cfg.model}{shown}: val acc {acc:.4f}",
        )
        write_eval(out_dir, record)
        if args.out is None:  # the run's env.json keeps every command that wrote to the run
            record_command(pred.run_dir, command_entry("eval", folder=str(out_dir)))
    note(f"wrote {out_dir}: eval.json and confusion_matrix.png", prefix="")
    return 0


def _batch(args: argparse.Namespace, pred: Predictor) -> int:
    """``--batch-size``, else the run's eval batch size."""
    from fcnlab.tasks import eval_batch_size

    return positive_batch(args, eval_batch_size(pred.cfg, inference=True))


def run_predict(args: argparse.Namespace) -> int:
    from fcnlab.data.images import list_images
    from fcnlab.infer.folders import predict_labels_csv
    from fcnlab.infer.predictor import load_predictor

    out = Path(args.out)
    if out.is_dir():
        raise ConfigError(f"--out {out}: is a folder; give the CSV file to write, e.g. {out / 'pred.csv'}")
    files = list_images(args.images)
    check_output_file(out, [args.images])
    if real_path(out) in {real_path(f) for f in files}:
        raise ConfigError(f"--out {out}: would overwrite an input image")
    pred = load_predictor(args.ckpt, args.device, task="classify", tta=args.tta)
    predict_labels_csv(pred, files, out, _batch(args, pred), args.workers, scores=args.scores)
    print(f"wrote {len(files)} predictions to {out}")
    return 0


def run_tsne(args: argparse.Namespace) -> int:
    import numpy as np

    from fcnlab.data.classification import scan_folder
    from fcnlab.evaluate.record import data_record, evaluation_record, is_own_validation
    from fcnlab.infer.folders import folder_features
    from fcnlab.infer.predictor import load_predictor
    from fcnlab.report.tsne import embed, plot_tsne, save_tsne_npz

    out = Path(args.out)
    if out.suffix.lower() != ".png":
        raise ConfigError(f"--out {out}: give a .png file name (the .npz goes beside it)")
    check_output_file(out, [args.data])
    check_output_file(out.with_suffix(".npz"), [args.data])
    pred = load_predictor(args.ckpt, args.device, task="classify", tta=args.tta)
    files, labels = scan_folder(args.data, need_labels=True, num_classes=pred.cfg.num_classes)
    t0 = time.perf_counter()
    feats = folder_features(pred, files, labels, _batch(args, pred), args.workers)
    t1 = time.perf_counter()
    emb = embed(feats, seed=args.seed)
    t2 = time.perf_counter()
    lab = np.asarray(labels)
    plot_tsne(emb, lab, out, title=f"t-SNE of {pred.cfg.model} penultimate features")
    record = evaluation_record(
        "classify",
        pred.path,
        pred.ckpt,
        data_record(args.data, len(files), "images", is_own_validation(args.data, pred.ckpt.get("config", {}))),
        pred.tta,
        (1.0,),
        {"seed": args.seed},
    )
    save_tsne_npz(out.with_suffix(".npz"), feats, lab, emb, provenance=record)
    print(
        f"features {feats.shape} in {t1 - t0:.1f}s, t-SNE in {t2 - t1:.1f}s; wrote {out} and {out.with_suffix('.npz')}"
    )
    return 0
