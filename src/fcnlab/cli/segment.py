"""``fcnlab segment train|eval|predict``: the P2 FCN land-cover models."""

from __future__ import annotations

import argparse

from fcnlab.cli.common import add_device, add_train_parser, add_tta, check_output_dir, positive_batch, tta_options
from fcnlab.runs import eval_dir, eval_writes, write_eval
from fcnlab.runtime.files import atomic_write_text


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("segment", help="P2: FCN-32s / FCN-8s land-cover segmentation")
    s = p.add_subparsers(dest="action", metavar="ACTION")
    s.required = True
    add_train_parser(s, "segment", "fcnlab segment train --config p2_fcn8s_resnet34 "
                                   "--data p2_data/train --val p2_data/validation --out runs/fcn8s")
    e = s.add_parser("eval", help="per-class IoU and mean IoU exactly as the course grades it")
    e.add_argument("--ckpt", required=True, help="checkpoint file or run folder")
    e.add_argument("--data", required=True, help="folder of NNNN_sat.jpg + NNNN_mask.png pairs")
    e.add_argument("--tile", type=int, default=1024, help="images larger than this are predicted in tiles")
    e.add_argument("--out", help="folder for eval.json and the plots (default: eval/ beside the checkpoint)")
    add_tta(e, "segment")
    add_device(e)
    e.set_defaults(func=run_eval)
    pr = s.add_parser("predict", help="write NNNN_mask.png RGB masks for every image of a folder")
    pr.add_argument("--ckpt", required=True)
    pr.add_argument("--images", required=True, help="folder of tiles (.jpg/.png, any size)")
    pr.add_argument("--out", required=True, help="output folder (other files in it are left alone)")
    pr.add_argument("--overlay", action="store_true", help="also write NNNN_overlay.jpg blended views")
    pr.add_argument("--tile", type=int, default=1024, help="images larger than this are predicted in tiles")
    add_tta(pr, "segment")
    add_device(pr)
    pr.set_defaults(func=run_predict)


def run_eval(args: argparse.Namespace) -> int:
    from fcnlab.data.mask_codec import CLASS_NAMES
    from fcnlab.evaluate.folders import segmentation_confusion
    from fcnlab.infer.predictor import load_predictor
    from fcnlab.report import viz
    from fcnlab.tasks import eval_batch_size
    from fcnlab.tasks.metrics import course_miou, format_course_lines

    pred = load_predictor(args.ckpt, args.device, task="segment", **tta_options(args))
    bs = positive_batch(args, eval_batch_size(pred.cfg, inference=True))
    out_dir = check_output_dir(args.out, [args.data]) if args.out else eval_dir(pred.run_dir, pred.tta, pred.scales)
    conf, report = segmentation_confusion(pred, args.data, bs, args.workers, tile=args.tile)
    if report.summary():
        print(f"note: {report.summary()}")
    mat = conf.mat.cpu().numpy()
    result = course_miou(mat)
    print(format_course_lines(result))
    for w in getattr(result, "warnings", []) or []:
        print(f"warning: {w}")
    rows = ["| class | name | IoU |", "|---|---|---|"]
    rows += [f"| {i} | {CLASS_NAMES[i]} | {v:.5f} |" for i, v in enumerate(result.per_class)]
    rows.append(f"| | **mean** | **{result.mean:.6f}** |")
    with eval_writes(out_dir, given=args.out is not None):
        atomic_write_text(out_dir / "per_class_iou.md", "\n".join(rows) + "\n")
        write_eval(pred.run_dir, {"task": "segment", "data": str(args.data),
                                  "per_class_iou": [float(v) for v in result.per_class],
                                  "mean_iou": float(result.mean), "confusion_matrix": mat.tolist()}, out_dir,
                   tta=pred.tta, scales=pred.scales)
        shown = "" if pred.tta == "none" and pred.scales == (1.0,) else f" ({eval_dir('', pred.tta, pred.scales)})"
        viz.plot_confusion_matrix(mat, list(CLASS_NAMES), out_dir / "confusion_matrix.png",
                                  title=f"{pred.cfg.model}{shown}: mIoU {result.mean:.4f}")
    print(f"wrote {out_dir / 'per_class_iou.md'} and {out_dir / 'confusion_matrix.png'}")
    return 0


def run_predict(args: argparse.Namespace) -> int:
    from fcnlab.data.segmentation import pair_files
    from fcnlab.infer.folders import predict_mask_folder
    from fcnlab.infer.predictor import load_predictor
    from fcnlab.infer.tiling import check_tile

    check_tile(args.tile)
    pairs = pair_files(args.images, need_masks=False)
    pred = load_predictor(args.ckpt, args.device, task="segment", **tta_options(args))  # before --out is made
    out = check_output_dir(args.out, [args.images])
    positive_batch(args, 1)
    n = predict_mask_folder(pred, pairs, out, tile=args.tile, workers=args.workers, overlay=args.overlay)
    print(f"wrote {n} masks to {out}")
    return 0
