"""Running the plan of :mod:`fcnlab.reproduce.plan`: skip what is done, resume what was cut, keep to a budget.

Every step is one ``fcnlab`` command run in this process (printed as ``$ fcnlab ...``, so it can be copied and
rerun alone). A finished step leaves a marker (:mod:`fcnlab.reproduce.state`); rerunning the same command skips
it. A training run that was interrupted continues from its ``last.pt`` (``train --resume``), and the steps after
it run again. With a budget, each training run gets a share of the time left in proportion to its recipe's
stated minutes (the rest is kept for evaluation and the report); when its share is spent, a SIGTERM to this
process makes training save a resumable checkpoint and stop, and the run is evaluated as it stands.
"""

from __future__ import annotations

import math
import os
import shutil
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fcnlab.data.images import real_path
from fcnlab.demo import DemoStepFailed, run_step
from fcnlab.errors import ConfigError, DataError
from fcnlab.reproduce.plan import Job, Profile, Step, course_root, expected_minutes, make_jobs, parse_only, plan_steps
from fcnlab.reproduce.state import State, check_outputs
from fcnlab.runs import LAST, read_eval
from fcnlab.runtime.cores import usable_cores
from fcnlab.runtime.device import cpu_computes_bf16, select_device
from fcnlab.runtime.files import atomic_write_text

#: Share of the time left that training may use (the rest: evaluation, t-SNE, masks, report).
TRAIN_SHARE = 0.85
#: A training run is not started with less than this many seconds for it.
MIN_TRAIN_S = 30.0
#: The metric of the default evaluation's ``eval.json`` (``eval/validation``) shown in the summary, per task.
METRIC = {"classify": ("val_acc", "acc"), "segment": ("mean_iou", "mIoU")}


class BudgetSpent(BaseException):
    """The budget timer fired outside training (loading data, say): a BaseException, so nothing swallows it."""


@dataclass
class Options:
    """Everything ``fcnlab reproduce`` was asked for."""

    data: Path
    out: Path
    profile: Profile
    only: str | None = None
    pretrained: bool | None = None
    budget_minutes: float | None = None
    device: str | None = None
    scratch: bool = False
    recipes: list[str] | None = None
    settings: list[str] = field(default_factory=list)  # extra training options, KEY=VALUE
    skip: tuple[str, ...] = ()
    debug: bool = False
    procs: int | None = None  # training processes of each run; None: the profile's on a CPU with the cores


def _settings(opts: Options) -> list[tuple[str, str]]:
    """``--set KEY=VALUE`` items as (``key_with_underscores``, value); ConfigError naming one without ``=``."""
    pairs = []
    for item in opts.settings:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"option --set {item!r}: expected KEY=VALUE, e.g. epochs=5")
        pairs.append((key.strip().replace("-", "_"), value.strip()))
    return pairs


def train_options(opts: Options) -> list[str]:
    """The extra ``train`` options: ``--pretrained``/``--no-pretrained`` and each ``KEY=VALUE`` as ``--key value``."""
    argv = [] if opts.pretrained is None else ["--pretrained" if opts.pretrained else "--no-pretrained"]
    for key, value in _settings(opts):
        argv += [f"--{key.replace('_', '-')}", value]
    return argv


def _outputs(steps: list[Step], jobs: list[Job], out: Path) -> dict[str, Path]:
    """The path each step writes, for :func:`check_outputs` (a run's later steps write inside its folder)."""
    owned = {f"train-{j.name}": j.run_dir for j in jobs}
    owned.update({s.key: out / f"{s.key}.{'md' if s.key == 'compare' else 'html'}" for s in steps if s.run is None})
    owned["summary"] = out / "summary.md"
    return owned


def reproduce(opts: Options, echo: Callable[[str], None] = print) -> dict[str, Any]:
    """Run the homework as ``opts`` says; return the summary (also written to ``OUT/summary.md``)."""
    t0 = time.time()
    data = course_root(opts.data)
    if not data.is_dir():
        raise DataError(f"--data {opts.data}: not a folder; give the course's dlcv folder (p1_data/, p2_data/)")
    out = opts.out
    if out.exists() and (not out.is_dir() or real_path(out) == real_path(data)):
        raise ConfigError(
            f"--out {out}: {'is a file' if not out.is_dir() else 'is the data folder'}; choose a new folder"
        )
    if opts.budget_minutes is not None and opts.budget_minutes <= 0:
        raise ConfigError(f"option --budget: minutes must be > 0, got {opts.budget_minutes:g}")
    if opts.procs is not None and opts.procs < 1:
        raise ConfigError(f"option --procs: must be 1 or more, got {opts.procs}")
    jobs = make_jobs(opts.profile, data, out, parse_only(opts.only), opts.scratch, opts.recipes, training_procs(opts))
    device = ["--device", opts.device] if opts.device else []
    steps = plan_steps(jobs, out, device, train_options(opts), opts.skip)
    state = State(out)
    check_outputs(state, _outputs(steps, jobs, out))
    echo(_intro(opts, jobs))
    deadline = t0 + opts.budget_minutes * 60 if opts.budget_minutes else None
    by_name = {j.name: j for j in jobs}
    no_model: set[str] = set()
    for number, step in enumerate(steps, start=1):
        planned = list(step.argv)
        if state.has(step.key, "done"):
            echo(f"[{number}/{len(steps)}] {step.title}: done before, skipped")
            if state.read(step.key, "done").get("planned", planned) != planned:
                echo(
                    f"  note: it was done with other options; delete {by_name[step.run].run_dir if step.run else out}"
                    f" (or choose another --out) to do it with these"
                )
            continue
        if step.run in no_model:
            echo(f"\n[{number}/{len(steps)}] {step.title}: skipped ({step.run} has no best.pt yet)")
            continue
        if step.run is None and no_model:  # compare, report: of the runs that have a model
            missing = {str(by_name[n].run_dir) for n in no_model}
            step.argv = [a for a in step.argv if a not in missing]
            if sum(str(j.run_dir) in step.argv for j in jobs) < (2 if step.key == "compare" else 1):
                echo(f"\n[{number}/{len(steps)}] {step.title}: skipped (too few trained runs)")
                continue
        state.mark(step.key, "started")
        if step.key.startswith("train-"):
            assert step.run is not None  # a training step always names its run
            job = by_name[step.run]
            later = [s.key for s in steps if s.run == job.name and s is not step]
            later += [s.key for s in steps if s.run is None]
            status = _train(
                step, job, state, later, number, len(steps), deadline, _rest(steps, state, jobs, step), opts.debug, echo
            )
            if not (job.run_dir / "best.pt").is_file():
                no_model.add(job.name)
            if status != "done":
                continue
        else:
            _run(step, number, len(steps), opts.debug, echo)
        state.mark(step.key, "done", {"argv": step.argv, "planned": planned, "seconds": round(step.seconds, 1)})
    result = summarize(jobs, steps, state, out, time.time() - t0)
    echo("\n" + result["text"])
    return result


def _intro(opts: Options, jobs: list[Job]) -> str:
    """The plan and the time it is expected to take, printed before anything starts."""
    minutes, unknown = expected_minutes(jobs)
    lines = [f"fcnlab reproduce: profile {opts.profile.name}, {len(jobs)} run(s) into {opts.out}/runs"]
    for j in jobs:
        time_text = f"about {j.info.minutes:g} min on {j.info.hardware}" if j.info.minutes else "no time estimate"
        lines.append(f"  {j.name:<28} {j.task:<8} {j.epochs:>3} epochs{j.procs_text}  {time_text} ({j.info.numbers})")
    expect = f"Expected time: about {minutes:g} min of training and evaluation"
    if unknown:
        expect += f", plus {', '.join(unknown)} (no estimate in the recipe)"
    where = f" ({opts.profile.where}" if opts.profile.where else " ("
    lines.append(expect + where + ("; " if opts.profile.where else "") + "each recipe's own estimate)")
    amp = dict(_settings(opts)).get("amp")  # --set amp=off overrides every recipe's
    slow = [j.name for j in jobs if (amp or j.amp) == "bf16"]
    if slow and _on_cpu(opts.device) and not cpu_computes_bf16():
        lines.append(
            f"This CPU has no AVX-512/AMX bf16: {', '.join(slow)} run in fp32 here (emulated bf16 is slower), "
            f"so they train more slowly than the estimates above (those with a time budget fit fewer epochs)"
        )
    if opts.budget_minutes:
        lines.append(
            f"Budget: {opts.budget_minutes:g} min; runs that do not fit are cut and resume when the same "
            f"command runs again"
        )
    lines.append("Interrupted, the same command continues where it stopped.")
    return "\n".join(lines)


def training_procs(opts: Options) -> int:
    """Training processes of each run: 1 when ``--set`` gives a batch or processes (the user's own choice wins),
    else ``--procs``, else the profile's ``cpu_procs`` when training runs on a CPU with that many usable cores,
    else 1 (a GPU trains in one process here)."""
    if {"batch_size", "procs"} & {key for key, _ in _settings(opts)}:
        return 1
    if opts.procs is not None:
        return opts.procs
    wanted = opts.profile.cpu_procs
    return wanted if wanted > 1 and usable_cores() >= wanted and _on_cpu(opts.device) else 1


def _on_cpu(device: str | None) -> bool:
    """True when training will run on the CPU (``--device``, or each recipe's ``auto`` without a GPU)."""
    try:
        return select_device(device or "auto").type == "cpu"
    except ConfigError:  # a GPU asked for and not there: the first training step says so
        return False


def _rest(steps: list[Step], state: State, jobs: list[Job], current: Step) -> list[Job]:
    """The training runs still to do from ``current`` on (for sharing the budget)."""
    keys = [s.key for s in steps[steps.index(current) :] if s.key.startswith("train-") and not state.has(s.key, "done")]
    return [j for j in jobs if f"train-{j.name}" in keys]


def _share(job: Job, rest: list[Job], left: float) -> float:
    """Seconds of ``left`` for training ``job``: in proportion to the stated minutes of the runs still to train."""
    known = [j.info.minutes for j in rest if j.info.minutes]
    fallback = sum(known) / len(known) if known else 1.0
    weight = {j.name: j.info.minutes or fallback for j in rest}
    return left * TRAIN_SHARE * weight[job.name] / sum(weight.values())


def _run(step: Step, number: int, total: int, debug: bool, echo: Callable[[str], None]) -> None:
    """One step; a failure stops the command with the step's exit code and how to continue."""
    try:
        run_step(step, number, total, debug, echo, what="reproduce step")
    except DemoStepFailed as e:
        raise DemoStepFailed(
            f"{e}; fix what it says, then run the same fcnlab reproduce command again: finished steps are skipped",
            e.exit_code,
        ) from None


def _train(
    step: Step,
    job: Job,
    state: State,
    later: list[str],
    number: int,
    total: int,
    deadline: float | None,
    rest: list[Job],
    debug: bool,
    echo: Callable[[str], None],
) -> str:
    """Train (or resume) one run; ``done``, ``cut`` (the budget stopped it) or ``not started``."""
    run = job.run_dir
    for key in later:  # the run changes: its evaluation, masks and the report are made again
        state.clear(key, "done")
    state.clear(step.key, "cut")
    if (run / LAST).is_file():
        step.argv = [job.task, "train", "--resume", str(run), *job.procs_argv(resume=True)]
        step.title = f"{step.title} (resuming {run})"
    elif run.exists():  # our own run that stopped before its first checkpoint: nothing in it to keep
        echo(f"note: {run} stopped before its first checkpoint; starting it again")
        shutil.rmtree(run)
    if deadline is None:
        _run(step, number, total, debug, echo)
        return "done"
    seconds = _share(job, rest, deadline - time.time())
    if seconds < MIN_TRAIN_S:
        echo(f"\n[{number}/{total}] {step.title}: not started, {seconds:.0f} s of the budget left for it")
        state.mark(step.key, "cut", {"reason": "budget spent before it started"})
        return "not started"
    step.title += f"; {seconds / 60:.1f} min of the budget"
    fired = threading.Event()

    def on_budget(signum: int, frame: Any) -> None:  # noqa: ARG001
        raise BudgetSpent

    def stop() -> None:
        fired.set()
        os.kill(os.getpid(), signal.SIGTERM)  # training saves a resumable last.pt and stops

    previous = signal.signal(signal.SIGTERM, on_budget)
    timer = threading.Timer(seconds, stop)
    timer.start()
    try:
        try:
            run_step(step, number, total, debug, echo, what="reproduce step")
        finally:
            timer.cancel()
    except BudgetSpent:
        pass
    except DemoStepFailed as e:
        if not fired.is_set():
            raise DemoStepFailed(
                f"{e}; fix what it says, then run the same fcnlab reproduce command again", e.exit_code
            ) from None
    finally:
        signal.signal(signal.SIGTERM, previous)
    if not fired.is_set():
        return "done"
    echo(f"{job.name}: its share of the budget is spent; it resumes from {run / LAST} when the same command runs again")
    state.mark(step.key, "cut", {"seconds": round(seconds, 1)})
    return "cut"


def _epochs_done(run: Path) -> int:
    """Rows of ``metrics.csv``: the epochs trained."""
    try:
        return max(0, len((run / "metrics.csv").read_text().strip().splitlines()) - 1)
    except OSError:
        return 0


def summarize(jobs: list[Job], steps: list[Step], state: State, out: Path, seconds: float) -> dict[str, Any]:
    """Each run's status and score (from its default evaluation, ``eval/validation/eval.json``) and where the
    report is; written to summary.md."""
    rows = []
    for j in jobs:
        done = _epochs_done(j.run_dir)
        status = (
            "done"
            if state.has(f"train-{j.name}", "done")
            else f"cut at epoch {done} of {j.epochs}"
            if done
            else "not trained"
        )
        key, label = METRIC[j.task]
        try:
            ev = read_eval(j.run_dir)
            value = float(ev[key])
            present = [float(v) for v in ev.get("per_class_iou") or [] if not math.isnan(float(v))]
            if math.isnan(value) and present:  # a class absent from the validation set: its mean over the others
                score = f"{label} {sum(present) / len(present):.4f} (present classes)"
            else:
                score = f"{label} {value:.4f}"
        except (DataError, KeyError, TypeError, ValueError):
            score = "not evaluated"
        rows.append({"run": j.name, "status": status, "score": score, "folder": str(j.run_dir)})
    width = max(len(r["run"]) for r in rows) + 2
    lines = [
        f"fcnlab reproduce: {sum(r['status'] == 'done' for r in rows)} of {len(rows)} runs trained in full "
        f"({seconds / 60:.1f} min this time)",
        "",
    ]
    lines += [f"  {r['run']:<{width}} {r['score']:<28} {r['status']:<22} {r['folder']}/" for r in rows]
    report, compare = out / "report.html", out / "compare.md"
    lines += [""] + [
        f"  {p}  {what}"
        for p, what in (
            (report, "the report: every result on one page"),
            (compare, "the P2 runs' per-class IoU side by side"),
        )
        if p.is_file()
    ]
    if not all(state.has(s.key, "done") for s in steps):
        lines += ["", "Not everything finished: run the same command again to continue."]
    text = "\n".join(lines)
    if out.is_dir():
        state.mark("summary", "started")
        atomic_write_text(out / "summary.md", f"# fcnlab reproduce\n\n```\n{text}\n```\n")
    return {"runs": rows, "report": str(report) if report.is_file() else None, "text": text}
