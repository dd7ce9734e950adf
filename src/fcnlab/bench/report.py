"""Markdown tables of a ``fcnlab bench`` result (the JSON dict of :func:`fcnlab.bench.run.run_bench`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fcnlab.bench.sections import FULL_TRAIN_SIZE
from fcnlab.runtime.files import atomic_write_text


def _fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        if abs(value) >= 100:
            return f"{value:,.0f}"
        return f"{value:.{digits}f}"
    return str(value)


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return lines + [""]


def _mem(row: dict[str, Any]) -> str:
    gpu, rss = row.get("peak_gpu_mb"), row.get("peak_rss_mb")
    return f"{_fmt(gpu, 0)} GPU" if gpu is not None else f"{_fmt(rss, 0)} RSS"


def to_markdown(result: dict[str, Any]) -> str:
    """All sections of ``result`` as Markdown (a header line with the device, then one table per section)."""
    env = result.get("env", {})
    device = env.get("device_name") or env.get("cpu_model") or env.get("device")
    load = env.get("loadavg_start")
    lines = [
        f"Device: {env.get('device')} ({device}); torch {env.get('torch')}, torchvision "
        f"{env.get('torchvision')}, {env.get('torch_threads')} threads"
        + (
            f"; load average {load[0]:.1f} at the start, {env['loadavg_end'][0]:.1f} at the end"
            if load and env.get("loadavg_end")
            else ""
        )
        + ("; quick sizes" if result.get("quick") else ""),
        "",
    ]
    mm = result.get("matmul_peak")
    if mm:
        lines += [
            f"Matmul peak ({mm['dtype']}, {mm['size']}x{mm['size']}): {mm['gflops']:.1f} GFLOP/s "
            f"(median {mm['median_gflops']:.1f})",
            "",
        ]
    models = result.get("models", {})
    if models:
        rows = []
        for name, m in models.items():
            phases = (
                ("train", "train"),
                ("infer_plain", "inference, bare model"),
                ("infer", "inference"),
                ("infer_folded", "inference, folded"),
                ("infer_small", "inference"),
                ("infer_folded_small", "inference, folded"),
            )
            for phase, label in phases:
                p = m.get(phase)
                if not p:
                    continue
                batch = p.get("batch") or (m["batch"] if phase == "train" else m["eval_batch"])
                rows.append(
                    [
                        name,
                        label,
                        m["input"],
                        str(batch),
                        m["amp"],
                        _fmt(p["img_per_s"]),
                        _fmt(p["step_ms"], 1),
                        _fmt(p["gflop_per_img"], 3),
                        _fmt(p["gflops_per_s"], 1),
                        _pct(p["mfu"]),
                        _mem(p),
                        _pct(p.get("cpu_util")),
                    ]
                )
        lines += _table(
            [
                "model",
                "phase",
                "input",
                "batch",
                "precision",
                "img/s",
                "ms/step",
                "GFLOP/img",
                "GFLOP/s",
                "MFU",
                "peak MB",
                "CPU share",
            ],
            rows,
        )
        lines += _compile_lines(models)
        vgg = models.get("vgg16_bn", {})
        if vgg.get("folded_speedup") is not None:
            small = vgg.get("folded_speedup_small_batch")
            also = f", {small:.2f}x at batch {vgg['infer_small']['batch']}" if small is not None else ""
            lines += [
                f"Folded P1 head: {vgg['folded_speedup']:.2f}x the unfolded inference throughput at "
                f"batch {vgg['eval_batch']}{also}."
            ]
            sweep = vgg.get("folded_speedup_by_batch") or {}
            if len(sweep) > 2:
                lines += ["By batch: " + ", ".join(f"{b}: {v:.2f}x" for b, v in sweep.items()) + "."]
            if vgg.get("inference_path_speedup") is not None:
                lines += [
                    f"fcnlab's P1 inference path (folded head, BatchNorm fused) is "
                    f"{vgg['inference_path_speedup']:.2f}x the bare trained model at batch "
                    f"{vgg['eval_batch']}."
                ]
            lines.append("")
    pipe = result.get("pipeline", {})
    if pipe:
        rows = [
            [
                name,
                p["input"],
                str(p["batch"]),
                str(p["images_per_epoch"]),
                _fmt(p["loader_img_per_s"]),
                _fmt(p["e2e_img_per_s"]),
                _fmt(p["pure_img_per_s"]),
                _fmt(p["e2e_over_pure"]),
                _fmt(p["decode_seconds"], 1),
                _fmt(p["projected_minutes_50_epochs_train_only"], 1),
                "yes" if p.get("resident") else "no",
            ]
            for name, p in pipe.items()
        ]
        lines += _table(
            [
                "model",
                "input",
                "batch",
                "images/epoch",
                "data loader img/s",
                "end-to-end img/s",
                "pure steps img/s",
                "e2e / pure",
                "decode s (once)",
                "50 epochs, min (train only)",
                "data on the GPU",
            ],
            rows,
        )
    ev = result.get("evaluator")
    if ev:
        rows = [
            [tool, _fmt(t["seconds"]), _fmt(t["masks_per_s"], 1), _fmt(t["peak_rss_mb"], 0), _fmt(t["mean_iou"], 6)]
            for tool, t in ev["tools"].items()
        ]
        lines += [f"Evaluator on {ev['masks']} {ev['source']} masks (perturbed predictions):", ""]
        lines += _table(["evaluator", "seconds", "masks/s", "peak RSS MB", "mean_iou"], rows)
        if "speedup_library" in ev:
            lines += [
                f"Speed-up over the course script: library {ev['speedup_library']:.1f}x, CLI "
                f"{ev['speedup_cli']:.1f}x; results agree: {_fmt(ev.get('agree'))}.",
                "",
            ]
    ts = result.get("tsne")
    if ts:
        lines += [
            f"t-SNE (fcnlab.report.tsne.embed) of {ts['points']} x {ts['dims']} features: {ts['seconds']:.1f} s.",
            "",
        ]
    comparisons = result.get("comparisons", [])
    if comparisons:
        lines += ["Against the hardware and the peers:", ""]
        lines += _table(
            ["measurement", "value", "measured against"],
            [[c["name"], _fmt(c["value"]), c["against"]] for c in comparisons],
        )
    for name, err in result.get("errors", {}).items():
        lines.append(f"- section {name} failed: {err}")
    return "\n".join(lines).rstrip() + "\n"


def _compile_lines(models: dict[str, Any]) -> list[str]:
    """One line per compiled phase: compile seconds, speed-up over eager and the images that pay it back,
    also in epochs of the course's training set (20,000 P1 images, 1,800 P2 tiles)."""
    lines = []
    for name, m in models.items():
        for phase, label in (("train", "training"), ("infer", "inference")):
            c = (m.get(phase) or {}).get("compile")
            if not c:
                continue
            images = c["break_even_images"]
            epoch = FULL_TRAIN_SIZE.get(m.get("task", ""), 0)
            pays = (
                "never paid back (compiled is not faster)"
                if images is None
                else f"paid back after {images:,} images" + (f" ({images / epoch:.2f} epochs)" if epoch else "")
            )
            lines.append(
                f"Compiled {name} {label} ({m.get('compile_mode')}): first call {c['first_call_s']:.1f} s "
                f"(compiling included), {c['speedup']:.2f}x eager ({_fmt(c['eager_img_per_s'])} img/s); "
                f"the compile time is {pays}."
            )
    return [*lines, ""] if lines else []


def write_outputs(result: dict[str, Any], out_dir: Path) -> tuple[Path, Path]:
    """Write ``bench.json`` and ``bench.md`` into ``out_dir`` atomically; return both paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    js, md = out_dir / "bench.json", out_dir / "bench.md"
    atomic_write_text(js, json.dumps(result, indent=2) + "\n")
    atomic_write_text(md, to_markdown(result))
    return js, md
