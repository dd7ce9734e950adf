"""What a report learns by loading the runs' checkpoints: parameter counts, measured inference speed, and
each model's prediction of the same validation tiles.

Everything here is measured when the report is written, on the machine writing it (the report says which
device); runs without a checkpoint are skipped with a note. The validation tiles come from the first run's
``val`` folder (from its ``config.yaml``) when that folder still exists.
"""

from __future__ import annotations

import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from fcnlab.report.runs import RunInfo

#: Inference speed is timed for at least this many seconds (and 2 batches) after one warm-up batch.
MIN_SECONDS = 1.0
MAX_BATCHES = 20


@dataclass
class ModelFacts:
    """One run's model as measured at report time."""

    run: str
    model: str
    params: int
    trainable: int
    batch: int
    input_shape: tuple[int, ...]
    seconds_per_batch: float
    unit: str  # "images" (P1) or "tiles" (P2)

    @property
    def per_second(self) -> float:
        """Images (P1) or tiles (P2) per second."""
        return self.batch / self.seconds_per_batch


@dataclass
class TileComparison:
    """The same validation tiles predicted by each P2 model: rows are tiles, one column per model."""

    names: list[str]
    images: list[np.ndarray]
    truths: list[np.ndarray]
    predictions: dict[str, list[np.ndarray]] = field(default_factory=dict)


@dataclass
class CheckpointFacts:
    """Everything :func:`measure_runs` found, and notes for what it could not do."""

    device: str = ""
    models: list[ModelFacts] = field(default_factory=list)
    tiles: TileComparison | None = None
    missing: list[str] = field(default_factory=list)  # runs without a checkpoint
    notes: list[str] = field(default_factory=list)
    tiles_note: str = ""  # why no side-by-side predictions were drawn

    def missing_note(self, names: Sequence[str] | None = None) -> str:
        """One line naming the runs (of ``names``, default all) that have no checkpoint, or ``""``."""
        runs = [n for n in self.missing if names is None or n in names]
        if not runs:
            return ""
        return (
            f"no best.pt or last.pt in the run folder of {', '.join(runs)}: no parameter count, speed or "
            f"predictions for {'it' if len(runs) == 1 else 'them'}"
        )


def device_description(device) -> str:  # noqa: ANN001 - a torch.device; torch is imported lazily
    """``cuda:0 (NVIDIA H100)`` or ``cpu (x86_64, 2 threads)``."""
    import torch

    if device.type == "cuda":
        return f"{device} ({torch.cuda.get_device_name(device)})"
    return f"{device} ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def _time(fn, min_seconds: float = MIN_SECONDS) -> float:  # noqa: ANN001 - a callable running one batch
    """Seconds per call of ``fn`` after one warm-up call: at least 2 calls and ``min_seconds``."""
    fn()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < 2 or (time.perf_counter() - start < min_seconds and len(times) < MAX_BATCHES):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def comparison_tiles(val: Path, count: int, names: Sequence[str] = ()) -> list[tuple[Path, Path]]:
    """``count`` evenly spaced tile/mask pairs of ``val`` (the training snapshots' choice), or the tiles
    named in ``names`` (file names or stems) when given."""
    from fcnlab.data.segmentation import pair_files
    from fcnlab.data.subset import snapshot_indices

    pairs = [(t, m) for t, m in pair_files(val) if m is not None]
    if names:
        wanted = [Path(n).name for n in names]
        by_name = {t.name: (t, m) for t, m in pairs} | {t.stem: (t, m) for t, m in pairs}
        return [by_name[n] for n in wanted if n in by_name]
    return [pairs[i] for i in snapshot_indices(len(pairs), count)] if pairs else []


def measure_runs(
    runs: Sequence[RunInfo], device: str = "auto", tiles: int = 3, tile_names: Sequence[str] = ()
) -> CheckpointFacts:
    """Load each run's checkpoint on ``device``: parameters, inference speed and (P2, two runs or more) the
    predictions of the same validation tiles."""
    import torch

    from fcnlab.checkpoint import load_checkpoint, model_from_checkpoint
    from fcnlab.config import from_dict
    from fcnlab.errors import FcnlabError
    from fcnlab.infer.predictor import make_predictor
    from fcnlab.infer.tiling import predict_mask
    from fcnlab.runtime.device import amp_dtype, select_device
    from fcnlab.tasks import task_info

    facts = CheckpointFacts()
    with_ckpt = [r for r in runs if r.checkpoint is not None]
    facts.missing = [r.name for r in runs if r.checkpoint is None]
    seg = [r for r in with_ckpt if task_info(r.task).dense]
    if len(seg) < 2:
        facts.tiles_note = (
            facts.missing_note([r.name for r in runs if task_info(r.task).dense]) or "it needs two P2 runs or more"
        )
    if not with_ckpt:
        return facts
    dev = select_device(device)
    facts.device = device_description(dev)
    pairs: list[tuple[Path, Path]] = []
    if len(seg) >= 2:
        val = next((Path(str(r.config["val"])) for r in seg if r.config.get("val")), None)
        if val is None or not val.is_dir():
            facts.tiles_note = (
                f"the runs' validation folder ({val or 'not in config.yaml'}) is not there any "
                f"more; write the report where training ran"
            )
        else:
            # the tiles of the homework's mask figure when the runs recorded them, so both figures agree
            names = list(tile_names) or next((r.snapshot_names for r in seg if r.snapshot_names), [])
            pairs = comparison_tiles(val, tiles, names)
            if pairs:
                from fcnlab.data.images import read_rgb
                from fcnlab.data.mask_codec import read_mask

                facts.tiles = TileComparison(
                    [t.name for t, _ in pairs], [read_rgb(t) for t, _ in pairs], [read_mask(m)[0] for _, m in pairs]
                )
    for run in with_ckpt:
        try:
            ckpt = load_checkpoint(run.checkpoint)  # type: ignore[arg-type]  # with_ckpt: runs that have one
            cfg = from_dict(ckpt["config"], str(run.checkpoint))
            model = model_from_checkpoint(ckpt, dev)
        except FcnlabError as e:
            facts.notes.append(f"{run.name}: {e}")
            continue
        params = sum(p.numel() for p in model.parameters())
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        amp = amp_dtype(cfg.amp, dev)
        pred = make_predictor(model, cfg, dev, amp, owned=True, ckpt=ckpt, path=run.checkpoint)  # type: ignore[arg-type]
        gen = torch.Generator().manual_seed(0)
        if task_info(cfg.task).dense:
            side = facts.tiles.images[0].shape[:2] if facts.tiles else (512, 512)
            batch, shape, unit = 1, (1, 3, *side), "tiles"
        else:
            batch, shape, unit = 256, (256, 3, 32, 32), "images"
        x = torch.randint(0, 256, shape, dtype=torch.uint8, generator=gen)

        def step(x=x, pred=pred) -> None:
            pred.logits(x)
            if pred.device.type == "cuda":
                torch.cuda.synchronize(pred.device)

        seconds = _time(step)
        facts.models.append(ModelFacts(run.name, run.model, params, trainable, batch, shape, seconds, unit))
        if facts.tiles is not None and task_info(run.task).dense:
            facts.tiles.predictions[run.name] = [predict_mask(pred, img) for img in facts.tiles.images]
        del pred, model
    return facts
