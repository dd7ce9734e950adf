"""Running the demo: the synthetic data, then each step through ``fcnlab.cli.main.main``, then the summary."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fcnlab.demo.layout import DemoLayout, prepare_demo_dir
from fcnlab.demo.plan import FULL, DemoPlan
from fcnlab.demo.results import collect_results, summary_text
from fcnlab.demo.steps import Step, plan_steps
from fcnlab.errors import ConfigError, FcnlabError
from fcnlab.runtime.files import atomic_write_text


class DemoStepFailed(FcnlabError):
    """A demo step (one ``fcnlab ...`` command) returned a non-zero exit code; its error is printed above."""

    def __init__(self, message: str, exit_code: int):
        super().__init__(message)
        self.exit_code = exit_code


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
