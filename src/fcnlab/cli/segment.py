"""``fcnlab segment train|eval|predict``: the P2 FCN land-cover models."""

from __future__ import annotations

import argparse

from fcnlab.cli.common import (
    add_device,
    add_train_parser,
    add_tta,
    check_output_dir,
    note,
    positive_batch,
    tta_options,
    warn,
)
from fcnlab.runs import PER_TILE, eval_writes, evaluation_dir, options_name, record_command, write_eval
from fcnlab.runtime.files import atomic_write_text, make_folder

OVERLAYS = "overlays"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("segment", help="P2: FCN-32s / FCN-8s land-cover segmentation")
    s = p.add_subparsers(dest="action", metavar="ACTION")
    s.required = True
    add_train_parser(
        s,
        "segment",
        "fcnlab segment train --config p2_fcn8s_resnet34 "
        "--data p2_data/train --val p2_data/validation --out runs/fcn8s",
    )
    e = s.add_parser(
        "eval",
        help="per-class IoU and mean IoU exactly as the course grades it",
        description="Score a checkpoint on a labelled folder. stdout holds exactly the course's "
        "'class #i : ...' and 'mean_iou: ...' lines; notes, warnings, the pixel accuracy "
        "and the mean class accuracy (classes 0-5) go to stderr. eval.json (with the "
        "checkpoint, data and options it measured), per_class_iou.md, per_tile.csv and "
        "confusion_matrix.png go to RUN/eval/NAME (or --out).",
    )
    e.add_argument("--ckpt", required=True, help="checkpoint file or run folder")
    e.add_argument("--data", required=True, help="folder of NNNN_sat.jpg + NNNN_mask.png pairs")
    e.add_argument("--tile", type=int, default=1024, help="images larger than this are predicted in tiles")
    e.add_argument(
        "--out",
        help="folder for eval.json and the plots (default: RUN/eval/NAME beside the "
        "checkpoint, NAME after the data and options: validation, val10_tta-d4 ...)",
    )
    add_tta(e, "segment")
    add_device(e)
    e.set_defaults(func=run_eval)
    pr = s.add_parser("predict", help="write NNNN_mask.png RGB masks for every image of a folder")
    pr.add_argument("--ckpt", required=True)
    pr.add_argument("--images", required=True, help="folder of tiles (.jpg/.png, any size)")
    pr.add_argument("--out", required=True, help="output folder (other files in it are left alone)")
    pr.add_argument(
        "--overlay",
        action="store_true",
        help="also write NNNN_overlay.jpg blended views and legend.png (the class colours) into "
        "OUT/overlays/, apart from the masks that 'fcnlab miou' reads",
    )
    pr.add_argument("--tile", type=int, default=1024, help="images larger than this are predicted in tiles")
    add_tta(pr, "segment")
    add_device(pr)
    pr.set_defaults(func=run_predict)


def run_eval(args: argparse.Namespace) -> int:
    from fcnlab.data.mask_codec import CLASS_NAMES, SCORED_CLASSES
    from fcnlab.evaluate.folders import segmentation_confusion
    from fcnlab.evaluate.record import data_record, evaluation_record, is_own_validation
    from fcnlab.evaluate.tables import per_tile_csv
    from fcnlab.infer.predictor import load_predictor
    from fcnlab.report import viz
    from fcnlab.runtime.provenance import command_entry
    from fcnlab.tasks import eval_batch_size
    from fcnlab.tasks.metrics import accuracy, course_miou, format_course_lines, mean_class_accuracy

    pred = load_predictor(args.ckpt, args.device, task="segment", **tta_options(args))
    bs = positive_batch(args, eval_batch_size(pred.cfg, inference=True))
    own = is_own_validation(args.data, pred.ckpt.get("config", {}))
    out_dir = (
        check_output_dir(args.out, [args.data])
        if args.out
        else evaluation_dir(pred.run_dir, args.data, own, pred.tta, pred.scales, pred.path.name)
    )
    tiles: list = []
    conf, report = segmentation_confusion(pred, args.data, bs, args.workers, tile=args.tile, per_image=tiles)
    off_palette = report.summary()
    if off_palette:
        note(off_palette)
    mat = conf.mat.cpu().numpy()
    result = course_miou(mat)
    print(format_course_lines(result), flush=True)  # stdout: the course's lines alone
    for w in result.warnings:
        warn(w)
    pixel_acc, class_acc = accuracy(mat), mean_class_accuracy(mat, SCORED_CLASSES)
    note(
        f"pixel accuracy {pixel_acc:.6f}, mean class accuracy {class_acc:.6f} (classes 0-{SCORED_CLASSES - 1}) "
        f"over {len(tiles)} image{'' if len(tiles) == 1 else 's'}"
    )
    rows = ["| class | name | IoU |", "|---|---|---|"]
    rows += [f"| {i} | {CLASS_NAMES[i]} | {v:.5f} |" for i, v in enumerate(result.per_class)]
    rows.append(f"| | **mean** | **{result.mean:.6f}** |")
    data = data_record(args.data, len(tiles), "tiles", own)
    record = evaluation_record(
        "segment",
        pred.path,
        pred.ckpt,
        data,
        pred.tta,
        pred.scales,
        {
            "per_class_iou": [float(v) for v in result.per_class],
            "mean_iou": float(result.mean),
            "val_acc": pixel_acc,
            "mean_class_acc": class_acc,
            "confusion_matrix": mat.tolist(),
        },
    )
    with eval_writes(out_dir, given=args.out is not None):
        atomic_write_text(out_dir / "per_class_iou.md", "\n".join(rows) + "\n")
        atomic_write_text(out_dir / PER_TILE, per_tile_csv(tiles))
        write_eval(out_dir, record)
        if args.out is None:  # the run's env.json keeps every command that wrote to the run
            record_command(pred.run_dir, command_entry("eval", folder=str(out_dir)))
        shown = "" if pred.tta == "none" and pred.scales == (1.0,) else f" ({options_name(pred.tta, pred.scales)})"
        viz.plot_confusion_matrix(
            mat,
            list(CLASS_NAMES),
            out_dir / "confusion_matrix.png",
            title=f"{pred.cfg.model}{shown}: mIoU {result.mean:.4f}",
        )
    note(f"wrote {out_dir}: eval.json, per_class_iou.md, {PER_TILE} and confusion_matrix.png", prefix="")
    return 0


def run_predict(args: argparse.Namespace) -> int:
    from fcnlab.data.segmentation import pair_files
    from fcnlab.infer.folders import check_mask_names, predict_mask_folder
    from fcnlab.infer.predictor import load_predictor
    from fcnlab.infer.tiling import check_tile

    check_tile(args.tile)
    pairs = pair_files(args.images, need_masks=False)
    check_mask_names(pairs)  # before --out is made
    pred = load_predictor(args.ckpt, args.device, task="segment", **tta_options(args))  # before --out is made
    out = check_output_dir(args.out, [args.images])
    positive_batch(args, 1)
    overlays = make_folder(out / OVERLAYS) if args.overlay else None
    n = predict_mask_folder(pred, pairs, out, tile=args.tile, workers=args.workers, overlay=overlays)
    if overlays is not None:
        from fcnlab.report.viz import plot_legend

        plot_legend(overlays / "legend.png")
    print(f"wrote {n} masks to {out}" + (f" and their overlays with legend.png to {overlays}" if overlays else ""))
    return 0
