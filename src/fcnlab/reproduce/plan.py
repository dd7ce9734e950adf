"""What ``fcnlab reproduce`` runs: the profiles' recipes, the course data's folders and the list of steps.

A profile names the recipes of each part (P1, P2) and the P2 pair the homework compares (FCN-32s vs FCN-8s).
Each recipe becomes one run folder ``OUT/runs/<recipe>`` and a few steps, each one ``fcnlab`` command:
train (P2 with masks at an early, a middle and the final epoch), eval (the course's printout), then t-SNE (P1)
or the predicted mask files (P2); after every run, ``compare`` of the P2 runs and one ``report.html``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from fcnlab import demo
from fcnlab.errors import ConfigError, DataError
from fcnlab.recipes import RecipeInfo, load_yaml, recipe_info
from fcnlab.runs import CONFIG
from fcnlab.tasks import task_info

#: The parts of the homework, the task that trains each, and the course folders each reads (under ``dlcv/``).
PARTS = {"p1": "classify", "p2": "segment"}
COURSE_FOLDERS = {
    "classify": {"data": "p1_data/train_50", "val": "p1_data/val_50", "val_csv": "p1_data/val_gt.csv"},
    "segment": {"data": "p2_data/train", "val": "p2_data/validation"},
}
#: The steps after training, by the deliverable of the task they produce (:attr:`TaskInfo.deliverables`).
STEPS = ("train", "eval", "tsne", "masks", "compare", "report")


@dataclass(frozen=True)
class Profile:
    """The recipes of one way to do the homework (names of shipped recipes or YAML files)."""

    name: str
    p1: tuple[str, ...]
    p2: tuple[str, ...]
    scratch: tuple[str, ...] = ()  # the from-scratch variants, run with --scratch
    where: str = ""  # the machine it is meant for, as the expected-time line says it
    #: Training processes of each run on a CPU with at least that many usable cores (``train --procs``, the
    #: recipe's batch split among them). On 2 cores two one-thread processes trained p2_laptop 1.3-1.5x faster
    #: than one, and p1_laptop_long's epochs took 47-49 s against 134-164 s (docs/BENCHMARKS.md).
    cpu_procs: int = 1


PROFILES = {
    "laptop": Profile(
        "laptop",
        p1=("p1_laptop_long",),
        p2=("p2_laptop", "p2_laptop_fcn32s", "p2_laptop_fcn8s"),
        where="a laptop CPU",
        cpu_procs=2,
    ),
    "gpu": Profile(
        "gpu",
        p1=("p1_vgg16bn",),
        p2=("p2_fcn32s_vgg16", "p2_fcn8s_resnet34"),
        scratch=("p2_fcn32s_vgg16_scratch", "p2_fcn8s_resnet34_scratch"),
        where="one GPU",
    ),
}


@dataclass
class Step(demo.Step):
    """One command of the plan (``fcnlab <argv>``); ``run`` is the run folder it belongs to (None: all runs)."""

    key: str = ""  # unique, a file name: train-p1_vgg16bn, eval-..., compare, report
    run: str | None = None


@dataclass
class Job:
    """One recipe of the plan and its run folder."""

    recipe: str
    info: RecipeInfo
    task: str
    epochs: int
    run_dir: Path
    folders: dict[str, Path] = field(default_factory=dict)
    amp: str = "auto"  # the recipe's autocast option (bf16 runs in fp32 on a CPU without native bf16)
    procs: int = 1  # training processes (``train --procs``)
    batch_size: int = 0  # the recipe's batch, split among ``procs``

    def procs_argv(self, resume: bool = False) -> list[str]:
        """``--procs N --batch-size B/N`` for a run in N processes, else nothing. A resumed run keeps the batch
        its checkpoint has, and its processes only if it was started so (its ``config.yaml`` has the split batch):
        a run begun in one process resumes in one, so its batch stays the recipe's."""
        if self.procs <= 1:
            return []
        split = self.batch_size // self.procs
        if not resume:
            return ["--procs", str(self.procs), "--batch-size", str(split)]
        try:
            saved = int(load_yaml(self.run_dir / CONFIG).get("batch_size", 0) or 0)
        except (ConfigError, OSError, ValueError):
            saved = 0
        return ["--procs", str(self.procs)] if saved == split else []

    @property
    def procs_text(self) -> str:
        """``", 2 processes"`` for a run trained in several, else nothing (the plan's lines)."""
        return f", {self.procs} processes" if self.procs > 1 else ""

    @property
    def name(self) -> str:
        """The run folder's name (the recipe's, without a ``.yaml``)."""
        return self.run_dir.name


def course_root(data: str | Path) -> Path:
    """The course's ``dlcv`` folder: ``data`` itself, or ``data/dlcv``."""
    root = Path(data)
    if not (root / "p1_data").is_dir() and not (root / "p2_data").is_dir() and (root / "dlcv").is_dir():
        root = root / "dlcv"
    return root


def snapshot_epochs(epochs: int) -> list[int]:
    """An early, a middle and the final epoch: 5, 25, 50 of 50 epochs (the homework's choice)."""
    return sorted({max(1, round(epochs / 10)), max(1, round(epochs / 2)), epochs})


def parse_only(text: str | None) -> tuple[str, ...]:
    """``--only p1,p2`` -> the parts; ConfigError naming an unknown one."""
    if not text:
        return tuple(PARTS)
    parts = tuple(p.strip().lower() for p in text.split(",") if p.strip())
    bad = [p for p in parts if p not in PARTS]
    if bad or not parts:
        raise ConfigError(f"option --only: {','.join(bad) or repr(text)} is not a part; give p1, p2 or p1,p2")
    return parts


def make_jobs(
    profile: Profile,
    data: Path,
    out: Path,
    parts: tuple[str, ...],
    scratch: bool,
    recipes: list[str] | None = None,
    procs: int = 1,
) -> list[Job]:
    """The runs of the plan, each with its recipe read (a missing recipe or data folder: one ConfigError/DataError
    naming it, before anything is written). ``procs``: training processes of each run whose recipe's batch
    divides among them (the others train in one)."""
    names = list(recipes or [])
    if not names:
        for part in parts:
            names += getattr(profile, part)
        if scratch and "p2" in parts:
            names += profile.scratch
    jobs = []
    for recipe in dict.fromkeys(names):
        info = recipe_info(recipe)
        if info.task not in COURSE_FOLDERS:
            raise ConfigError(f"recipe {recipe}: task {info.task!r} is not one of the homework's")
        values = load_yaml(recipe)
        folders = {k: data / rel for k, rel in COURSE_FOLDERS[info.task].items()}
        missing = [str(p) for p in folders.values() if not p.exists()]
        if missing:
            raise DataError(
                f"--data {data}: {', '.join(missing)} not found; give the course's dlcv folder (it holds "
                f"p1_data/ and p2_data/)"
            )
        epochs, run_dir = int(values.get("epochs", 50)), out / "runs" / Path(recipe).stem
        batch = int(values.get("batch_size", 0) or 0)
        job_procs = procs if batch > 0 and batch % procs == 0 else 1  # a batch that splits evenly
        jobs.append(
            Job(recipe, info, info.task, epochs, run_dir, folders, str(values.get("amp", "auto")), job_procs, batch)
        )
    if not jobs:
        raise ConfigError("nothing to run: the profile has no recipe for the parts asked for (--only)")
    return jobs


def plan_steps(
    jobs: list[Job], out: Path, device: list[str], options: list[str], skip: tuple[str, ...] = ()
) -> list[Step]:
    """Every step of the plan, in order. ``device``: ``--device X`` for every command; ``options``: extra
    training options (``--no-pretrained``, ``--epochs 2`` ...)."""
    infer = [*device, "--workers", "0"]
    steps: list[Step] = []
    for job in jobs:
        run, f = str(job.run_dir), job.folders
        info = task_info(job.task)
        train = [
            job.task,
            "train",
            "--config",
            job.recipe,
            "--data",
            str(f["data"]),
            "--val",
            str(f["val"]),
            *(["--val-csv", str(f["val_csv"])] if "val_csv" in f else []),
            "--out",
            run,
        ]
        train += job.procs_argv()
        title = f"train {job.name} ({info.label}, {job.epochs} epochs{job.procs_text})"
        if info.snapshots and "--snapshot-epochs" not in options:
            snaps = ",".join(map(str, snapshot_epochs(job.epochs)))
            train += ["--snapshot-epochs", snaps]
            title += f", masks at epochs {snaps}"
        steps.append(Step(title, [*train, *device, *options], key=f"train-{job.name}", run=job.name))
        if "eval" not in skip:
            evaluate = [
                job.task,
                "eval",
                "--ckpt",
                run,
                "--data",
                str(f["val"]),
                *(["--csv", str(f["val_csv"])] if "val_csv" in f else []),
                *infer,
            ]
            steps.append(
                Step(
                    f"{job.name}: the course's printout on the validation set",
                    evaluate,
                    key=f"eval-{job.name}",
                    run=job.name,
                )
            )
        if "tsne" in info.deliverables and "tsne" not in skip:
            steps.append(
                Step(
                    f"{job.name}: t-SNE of the penultimate-layer features",
                    [
                        job.task,
                        "tsne",
                        "--ckpt",
                        run,
                        "--data",
                        str(f["val"]),
                        "--out",
                        str(job.run_dir / "tsne.png"),
                        *infer,
                    ],
                    key=f"tsne-{job.name}",
                    run=job.name,
                )
            )
        if "masks" in info.deliverables and "masks" not in skip:
            steps.append(
                Step(
                    f"{job.name}: predicted masks of the validation tiles",
                    [
                        job.task,
                        "predict",
                        "--ckpt",
                        run,
                        "--images",
                        str(f["val"]),
                        "--out",
                        str(job.run_dir / "masks"),
                        *infer,
                    ],
                    key=f"masks-{job.name}",
                    run=job.name,
                )
            )
    dense = [j for j in jobs if task_info(j.task).iou]
    if len(dense) > 1 and "compare" not in skip:
        steps.append(
            Step(
                "P2: per-class IoU of the runs side by side",
                ["compare", *[str(j.run_dir) for j in dense], "--out", str(out / "compare.md")],
                key="compare",
            )
        )
    if "report" not in skip:
        steps.append(
            Step(
                "one HTML page with every result",
                ["report", *[str(j.run_dir) for j in jobs], "--out", str(out / "report.html")],
                key="report",
            )
        )
    return steps


def expected_minutes(jobs: list[Job]) -> tuple[float, list[str]]:
    """The sum of the recipes' stated minutes and the names of recipes that state none."""
    known = [j.info.minutes for j in jobs if j.info.minutes]
    return sum(known), [j.name for j in jobs if not j.info.minutes]
