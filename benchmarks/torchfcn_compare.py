"""fcnlab's FCNs vs wkentaro's torchfcn (the popular PyTorch port of the Caffe FCNs), timed in one run.

torchfcn is never a dependency of fcnlab: install it for this script only, without its dependencies, into
a scratch folder::

    pip install --no-deps --target /tmp/torchfcn_env torchfcn
    python benchmarks/torchfcn_compare.py --torchfcn /tmp/torchfcn_env --out /tmp/torchfcn_compare

(``--install`` runs that pip command for you.) torchfcn's model files import the ``fcn`` package only to
download Caffe weights, so an empty stand-in ``fcn`` module lets them load; ``torchfcn/__init__.py`` (which
imports its trainer and data sets, with more dependencies) is bypassed by loading ``torchfcn.models`` alone.

Models, all at the same input size and batch (default 512x512, batch 2, fp32, the current device):

* ``torchfcn_fcn32s`` / ``torchfcn_fcn8s``: torchfcn's FCN32s / FCN8s (plain VGG16, Caffe-style
  ``padding=100`` on conv1_1 and crops; FCN8s with learned upsamplers). Their convolutions start at zero in
  torchfcn (weights come from Caffe), so they are re-initialised with Kaiming-normal weights here.
* ``fcn32s_vgg16`` / ``fcn8s_resnet34``: fcnlab's models (VGG16-BN / ResNet34, no padding trick).
* ``fcn32s_vgg16_plain``: fcnlab's FCN-32s geometry on torchfcn's exact trunk, plain VGG16 without
  BatchNorm: the same-architecture comparison with torchfcn's FCN32s (fcnlab's own model adds BatchNorm).

Each training step is forward + mean pixel cross-entropy + backward + SGD (momentum 0.9) over the model's
trainable parameters; inference is a forward pass under ``torch.inference_mode``. The models are timed in
interleaved rounds (one step of each model per round) so a change in machine load hits all of them alike;
the median round is reported, with GFLOP per image from ``torch.utils.flop_counter``.

Each library runs in its own worker process, as its users run it (``--malloc as-run``, the default):
torchfcn's models in a plain Python process with glibc's default allocator, fcnlab's with the setting the
``fcnlab`` program makes at start-up (:mod:`fcnlab.runtime.host_memory`: freed memory kept for reuse). The parent
only sends "time one step of model M" to one worker at a time, so the rounds stay interleaved and never
overlap. ``--malloc fcnlab`` / ``--malloc system`` give both workers the same setting instead.
"""

from __future__ import annotations

import argparse
import importlib
import json
import multiprocessing as mp
import os
import statistics
import subprocess
import sys
import time
import traceback
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

NUM_CLASSES = 7
TARGETS = (  # (what, fcnlab model, phase, torchfcn model, target ratio)
    ("fcn32s_vgg16 training vs torchfcn FCN32s", "fcn32s_vgg16", "train", "torchfcn_fcn32s", 1.5),
    ("fcn32s_vgg16 inference vs torchfcn FCN32s", "fcn32s_vgg16", "infer", "torchfcn_fcn32s", 1.8),
    ("fcn8s_resnet34 training vs torchfcn FCN8s", "fcn8s_resnet34", "train", "torchfcn_fcn8s", 10.0),
)
SAME_ARCH = (  # (what, fcnlab model, phase, torchfcn model) -- reported, no target
    (
        "plain-VGG16 FCN-32s (fcnlab geometry) training vs torchfcn FCN32s",
        "fcn32s_vgg16_plain",
        "train",
        "torchfcn_fcn32s",
    ),
    (
        "plain-VGG16 FCN-32s (fcnlab geometry) inference vs torchfcn FCN32s",
        "fcn32s_vgg16_plain",
        "infer",
        "torchfcn_fcn32s",
    ),
    ("fcn8s_resnet34 inference vs torchfcn FCN8s", "fcn8s_resnet34", "infer", "torchfcn_fcn8s"),
)


def require_torchfcn(folder: Path) -> Path:
    """``folder/torchfcn``, or SystemExit with the pip command that installs it there."""
    package = folder / "torchfcn"
    if not (package / "models" / "fcn32s.py").is_file():
        raise SystemExit(
            f"torchfcn not found in {folder}; run: {sys.executable} -m pip install --no-deps "
            f"--target {folder} torchfcn   (or pass --install)"
        )
    return package


def load_torchfcn_models(folder: Path) -> types.ModuleType:
    """Import ``torchfcn.models`` from ``folder`` (``pip install --target``) with a stand-in ``fcn``."""
    package = require_torchfcn(folder)
    sys.modules.setdefault("fcn", types.ModuleType("fcn"))  # only used to download Caffe weights
    stub = types.ModuleType("torchfcn")
    stub.__path__ = [str(package)]  # a package without running torchfcn/__init__.py (trainer, data sets)
    sys.modules["torchfcn"] = stub
    return importlib.import_module("torchfcn.models")


def kaiming_init(model: nn.Module) -> nn.Module:
    """Re-initialise the (zero-initialised) torchfcn convolutions as if VGG weights had been copied in."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
    return model


def plain_vgg16_fcn32s() -> nn.Module:
    """fcnlab's FCN-32s (fc6 7x7 with padding 3, x32 bilinear upsampler, no crop) on a plain VGG16 trunk."""
    from torchvision.models import vgg

    from fcnlab.models.fcn import FCN32sVGG16

    class PlainVGGFCN32s(FCN32sVGG16):
        def _build_trunk(self) -> None:
            super()._build_trunk()
            self.features = vgg.make_layers(vgg.cfgs["D"], batch_norm=False)

    return kaiming_init(PlainVGGFCN32s(NUM_CLASSES, learn_upsampling=False))


MODEL_NAMES = ("torchfcn_fcn32s", "fcn32s_vgg16", "fcn32s_vgg16_plain", "torchfcn_fcn8s", "fcn8s_resnet34")


def library_of(name: str) -> str:
    """``torchfcn`` or ``fcnlab``: whose code a compared model is (and so which worker runs it)."""
    return "torchfcn" if name.startswith("torchfcn") else "fcnlab"


def allocator_for(library: str, malloc: str) -> str:
    """The allocator setting a library's worker gets: ``fcnlab`` (keep freed memory) or ``system``."""
    if malloc == "as-run":
        return "fcnlab" if library == "fcnlab" else "system"
    return malloc


def build_models(names: list[str], torchfcn_folder: Path | None) -> dict[str, nn.Module]:
    """The models to compare, by name, with the seed fixed (torchfcn is imported only if one is asked for)."""
    from fcnlab.models import build_model

    def torchfcn(name: str) -> nn.Module:
        if torchfcn_folder is None:
            raise SystemExit(f"{name} needs --torchfcn FOLDER")
        return kaiming_init(getattr(load_torchfcn_models(torchfcn_folder), name)(n_class=NUM_CLASSES))

    makers: dict[str, Callable[[], nn.Module]] = {
        "torchfcn_fcn32s": lambda: torchfcn("FCN32s"),
        "torchfcn_fcn8s": lambda: torchfcn("FCN8s"),
        "fcn32s_vgg16": lambda: build_model("fcn32s_vgg16", NUM_CLASSES),
        "fcn32s_vgg16_plain": plain_vgg16_fcn32s,
        "fcn8s_resnet34": lambda: build_model("fcn8s_resnet34", NUM_CLASSES),
    }
    out = {}
    for name in names:
        torch.manual_seed(0)
        out[name] = makers[name]()
    return out


class Runner:
    """One model's training step and inference pass on a resident random batch.

    ``prepare`` (fcnlab's models by default) runs the model as fcnlab's commands run it: the engine's
    training step (:class:`fcnlab.bench.models.TrainStep`: the engine's optimizer and memory format, the
    P2 recipe's SGD settings) and inference through :func:`fcnlab.infer.predictor.make_predictor` (eval-mode
    BatchNorm folded into the convolutions, the same memory format). Without it the model runs as it is:
    NCHW, plain SGD (momentum 0.9, weight decay 5e-4 on every parameter) as torchfcn's trainer does; that
    is torchfcn's models, and fcnlab's with ``--fcnlab-path plain``.
    """

    def __init__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, device: torch.device, prepare: bool = False):
        model = model.to(device)
        self.model, self.device = model, device
        self.infer_model, self.infer_x = model, x
        if not prepare:
            params = [p for p in model.parameters() if p.requires_grad]
            opt = torch.optim.SGD(params, lr=1e-4, momentum=0.9, weight_decay=5e-4)

            def step() -> None:
                loss = F.cross_entropy(model(x), y)
                loss.backward()
                opt.step()
                opt.zero_grad(set_to_none=True)  # frees the gradients between rounds (5 models share the RAM)

            self.step: Callable[[], object] = step
            return
        from fcnlab.bench.models import TrainStep
        from fcnlab.config import from_dict
        from fcnlab.infer.predictor import make_predictor
        from fcnlab.models.memory_format import to_channels_last, use_channels_last
        from fcnlab.tasks import make_task

        # the P2 recipe's task, input size and device; the model itself is passed in
        cfg = from_dict(
            {
                "task": "segment",
                "model": "fcn32s_vgg16",
                "num_classes": NUM_CLASSES,
                "image_size": x.shape[-1],
                "device": str(device),
            },
            "torchfcn_compare",
        )
        cl = use_channels_last(cfg.channels_last, cfg.model, cfg.image_size, device)
        model = to_channels_last(model, cl)
        self.step = TrainStep(model, make_task(cfg), cfg, device, to_channels_last(x, cl), y)
        pred = make_predictor(model, cfg, device, None)  # a fused copy; ``model`` keeps training
        self.infer_model, self.infer_x = pred.model, to_channels_last(x, pred.channels_last)

    def train_step(self) -> None:
        self.model.train()
        self.step()
        if hasattr(self.step, "optimizer"):  # TrainStep zeroes before backward: free the gradients now
            self.step.optimizer.zero_grad(set_to_none=True)

    def infer(self) -> None:
        self.infer_model.eval()
        with torch.inference_mode():
            self.infer_model(self.infer_x)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], None], device: torch.device, clock: Callable[[], float]) -> float:
    """Seconds of one ``fn()`` call on ``clock`` (wall time, or process CPU time with ``--clock cpu``)."""
    sync(device)
    t0 = clock()
    fn()
    sync(device)
    return clock() - t0


def gflop_per_image(fn: Callable[[], None], batch: int) -> float:
    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return counter.get_total_flops() / batch / 1e9


def serve(conn: Any, library: str, names: list[str], settings: dict[str, Any]) -> None:
    """Worker process: set the allocator, build ``names`` and answer ``(what, model, phase)`` requests.

    ``what`` is ``"gflop"`` (GFLOP per image, counted on a call that also warms up) or ``"seconds"`` (one
    timed call); ``None`` ends the worker. Replies are ``("ok", value)`` or ``("error", one line)``.
    """
    try:
        malloc = allocator_for(library, settings["malloc"])
        if malloc == "fcnlab":
            from fcnlab.runtime.host_memory import keep_freed_memory

            if not keep_freed_memory():  # not glibc, or FCNLAB_MALLOC=system: as the fcnlab program runs
                if settings["malloc"] == "fcnlab":
                    raise RuntimeError("cannot keep freed memory here (needs glibc; FCNLAB_MALLOC=system?)")
                malloc = "system"
        if settings["threads"]:
            torch.set_num_threads(settings["threads"])
        device = torch.device(settings["device"])
        gen = torch.Generator().manual_seed(0)  # the same batch in every worker
        x = torch.randn(settings["batch"], 3, settings["size"], settings["size"], generator=gen).to(device)
        y = torch.randint(0, NUM_CLASSES, (settings["batch"], settings["size"], settings["size"]), generator=gen).to(
            device
        )
        folder = Path(settings["torchfcn"])
        runners = {
            name: Runner(m, x, y, device, settings["fcnlab_path"] == "engine" and library == "fcnlab")
            for name, m in build_models(names, folder).items()
        }
        clock = time.perf_counter if settings["clock"] == "wall" else time.process_time
        conn.send(("ok", {"threads": torch.get_num_threads(), "malloc": malloc}))
    except BaseException as exc:  # noqa: BLE001 -- reported to the parent as one line
        conn.send(("error", f"{library} worker: {type(exc).__name__}: {exc}"))
        return
    while (request := conn.recv()) is not None:
        what, name, phase = request
        fn = runners[name].train_step if phase == "train" else runners[name].infer
        try:
            value = gflop_per_image(fn, settings["batch"]) if what == "gflop" else timed(fn, device, clock)
            conn.send(("ok", value))
        except BaseException as exc:  # noqa: BLE001
            traceback.print_exc()
            conn.send(("error", f"{name} {phase}: {type(exc).__name__}: {exc}"))


class Worker:
    """The parent's handle on one library's worker process (started with ``spawn``: a fresh interpreter,
    so the allocator setting is the worker's own and nothing of the parent's is inherited)."""

    def __init__(self, library: str, names: list[str], settings: dict[str, Any]):
        ctx = mp.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.library = library
        self.process = ctx.Process(target=serve, args=(child, library, names, settings), daemon=True)
        self.process.start()
        self.info = self._reply()

    def _stopped(self) -> SystemExit:
        """The one-line error for a worker that died (the out-of-memory killer, a crash)."""
        self.process.join(timeout=10)
        return SystemExit(f"torchfcn_compare: the {self.library} worker stopped (exit code {self.process.exitcode})")

    def _reply(self) -> Any:
        try:
            status, value = self.conn.recv()
        except (EOFError, OSError):
            raise self._stopped() from None
        if status != "ok":
            raise SystemExit(f"torchfcn_compare: {value}")
        return value

    def ask(self, what: str, name: str, phase: str) -> float:
        """GFLOP per image (``what="gflop"``) or the seconds of one call (``"seconds"``) of a model's phase."""
        try:
            self.conn.send((what, name, phase))
        except OSError:  # BrokenPipeError: the worker is gone
            raise self._stopped() from None
        return self._reply()

    def close(self) -> None:
        try:
            self.conn.send(None)
        except (BrokenPipeError, OSError):
            pass
        self.process.join(timeout=30)
        if self.process.is_alive():
            self.process.kill()


def compare(
    workers: dict[str, Worker], batch: int, rounds: int, log: Callable[[str], None]
) -> dict[str, dict[str, Any]]:
    """Interleaved timing over ``workers`` (model name -> its library's worker): FLOPs on a first (warm-up)
    call, then ``rounds`` rounds of one call per model, one call at a time."""
    result: dict[str, dict[str, Any]] = {name: {} for name in workers}
    for phase in ("train", "infer"):
        for name, w in workers.items():
            result[name][f"{phase}_gflop_per_img"] = round(w.ask("gflop", name, phase), 2)
            log(f"{phase} warm-up {name}: {result[name][f'{phase}_gflop_per_img']} GFLOP/img")
        times: dict[str, list[float]] = {name: [] for name in workers}
        for i in range(rounds):
            for name, w in workers.items():
                times[name].append(w.ask("seconds", name, phase))
            done = ", ".join(f"{n} {t[-1]:.2f}s" for n, t in times.items())
            log(f"{phase} round {i + 1}/{rounds}: {done}")
        for name, ts in times.items():
            result[name][f"{phase}_img_per_s"] = round(batch / statistics.median(ts), 4)
            result[name][f"{phase}_seconds"] = [round(t, 3) for t in ts]
    return result


def ratios(models: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Each target and same-architecture ratio (fcnlab img/s over torchfcn img/s)."""
    rows = []
    for what, ours, phase, theirs, *target in TARGETS + SAME_ARCH:
        if ours in models and theirs in models:
            value = models[ours][f"{phase}_img_per_s"] / models[theirs][f"{phase}_img_per_s"]
            row = {"what": what, "ratio": round(value, 2), "target": target[0] if target else None}
            row["met"] = None if not target else bool(value >= target[0])
            rows.append(row)
    return rows


def describe_allocators(malloc: dict[str, str]) -> str:
    """``{"fcnlab": "fcnlab", "torchfcn": "system"}`` -> readable text for the report."""
    words = {"fcnlab": "freed memory kept for reuse (fcnlab's setting)", "system": "glibc's defaults"}
    if len(set(malloc.values())) == 1:
        return words[next(iter(malloc.values()))] + (" for both" if len(malloc) > 1 else "")
    return "; ".join(f"{lib} process: {words[m]}" for lib, m in sorted(malloc.items()))


def to_markdown(report: dict[str, Any]) -> str:
    """The models and ratios as Markdown tables."""
    clock = "wall time" if report["clock"] == "wall" else "process CPU time"
    lines = [
        f"torchfcn {report['torchfcn_version']} vs fcnlab at {report['size']}x{report['size']}, batch "
        f"{report['batch']}, fp32, {report['device']} ({report['threads']} threads), median {clock} of "
        f"{report['rounds']} interleaved rounds; load average {report['loadavg']}"
        + (
            "; fcnlab models as fcnlab runs them (engine memory format; inference with BatchNorm fused)"
            if report["fcnlab_path"] == "engine"
            else "; fcnlab models as bare NCHW modules"
        )
        + "; allocator: "
        + describe_allocators(report["malloc"]),
        "",
        "| model | train img/s | inference img/s | train GFLOP/img | inference GFLOP/img |",
        "|---|---|---|---|---|",
    ]
    for name, m in report["models"].items():
        lines.append(
            f"| {name} | {m['train_img_per_s']:.3f} | {m['infer_img_per_s']:.3f} | "
            f"{m['train_gflop_per_img']:.1f} | {m['infer_gflop_per_img']:.1f} |"
        )
    lines += ["", "| ratio (fcnlab / torchfcn) | value | target |", "|---|---|---|"]
    for r in report["ratios"]:
        goal = "-" if r["target"] is None else f">= {r['target']:g} ({'met' if r['met'] else 'NOT met'})"
        lines.append(f"| {r['what']} | {r['ratio']:.2f}x | {goal} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--torchfcn",
        type=Path,
        default=Path("/tmp/torchfcn_env"),
        help="folder torchfcn was pip-installed into with --target (default: %(default)s)",
    )
    parser.add_argument(
        "--install", action="store_true", help="first pip install --no-deps torchfcn into the --torchfcn folder"
    )
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds after the warm-up (default 3)")
    parser.add_argument("--device", default="cpu", help="cpu (the numbers of docs/BENCHMARKS.md) or cuda")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's choice)")
    parser.add_argument(
        "--clock",
        choices=("wall", "cpu"),
        default="wall",
        help="wall time (default), or process CPU time: steadier on a shared machine with "
        "--threads 1, where CPU time is the work done",
    )
    parser.add_argument(
        "--fcnlab-path",
        choices=("engine", "plain"),
        default="engine",
        help="engine (default): fcnlab's models as its commands run them (the engine's memory "
        "format, inference with BatchNorm fused into the convolutions); plain: the bare "
        "modules in NCHW format, as torchfcn's always run",
    )
    parser.add_argument(
        "--malloc",
        choices=("as-run", "fcnlab", "system"),
        default="as-run",
        help="as-run (default): each library's worker runs as its users run it (torchfcn with "
        "glibc's defaults, fcnlab keeping freed memory as the fcnlab program does); "
        "fcnlab / system: both workers get that one setting",
    )
    parser.add_argument("--models", default=",".join(MODEL_NAMES), help="comma-separated subset")
    parser.add_argument("--out", type=Path, help="folder for torchfcn_compare.json and torchfcn_compare.md")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    if unknown := sorted(set(names) - set(MODEL_NAMES)):
        parser.error(f"unknown model(s) {', '.join(unknown)}; choose from {', '.join(MODEL_NAMES)}")
    if args.install:
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--no-deps", "--target", str(args.torchfcn), "torchfcn"],
            check=True,
        )
    if any(library_of(n) == "torchfcn" for n in names):
        require_torchfcn(args.torchfcn)
    infos = sorted(args.torchfcn.glob("torchfcn-*.dist-info"))
    version = infos[0].name.removesuffix(".dist-info").split("-")[1] if infos else "unknown"

    def log(msg: str) -> None:
        print(f"torchfcn_compare: {msg}", file=sys.stderr, flush=True)

    settings = {
        "malloc": args.malloc,
        "threads": args.threads,
        "device": args.device,
        "batch": args.batch,
        "size": args.size,
        "torchfcn": str(args.torchfcn),
        "fcnlab_path": args.fcnlab_path,
        "clock": args.clock,
    }
    libraries = {library_of(n) for n in names}
    pool: dict[str, Worker] = {}
    try:
        for library in sorted(libraries):
            pool[library] = Worker(library, [n for n in names if library_of(n) == library], settings)
            log(f"{library} worker ready: {pool[library].info}")
        models = compare({n: pool[library_of(n)] for n in names}, args.batch, args.rounds, log)
    finally:
        for w in pool.values():
            w.close()
    import torchvision

    command = "python benchmarks/torchfcn_compare.py " + " ".join(sys.argv[1:] if argv is None else argv)
    threads = sorted({w.info["threads"] for w in pool.values()})
    report = {
        "torchfcn_version": version,
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "device": args.device,
        "threads": threads[0] if len(threads) == 1 else threads,
        "size": args.size,
        "batch": args.batch,
        "rounds": args.rounds,
        "clock": args.clock,
        "fcnlab_path": args.fcnlab_path,
        "malloc": {lib: w.info["malloc"] for lib, w in pool.items()},
        "models": models,
        "ratios": ratios(models),
        "loadavg": [round(v, 2) for v in os.getloadavg()],
        "command": command,
    }
    md = to_markdown(report)
    print(md)
    if args.out is not None:
        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
        from fcnlab.runtime.files import atomic_write_text

        atomic_write_text(args.out / "torchfcn_compare.json", json.dumps(report, indent=2) + "\n")
        atomic_write_text(args.out / "torchfcn_compare.md", md)
        print(f"wrote {args.out / 'torchfcn_compare.json'} and {args.out / 'torchfcn_compare.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
