"""``fcnlab reproduce``: the homework end to end on tiny synthetic data in the course's layout, its resume after an
interruption, the time budget and what is refused before anything starts."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from fcnlab.cli.main import main
from fcnlab.data.synthetic import make_classification_data, make_segmentation_data
from fcnlab.reproduce import plan as reproduce_plan
from fcnlab.reproduce import run as reproduce_run
from fcnlab.reproduce.plan import PROFILES, make_jobs, snapshot_epochs
from fcnlab.reproduce.state import STATE

P1 = """about:
  numbers: estimated
  minutes: 0.5
  hardware: a test machine
task: classify
model: resnet18
num_classes: 4
epochs: 2
batch_size: 8
cache: memory
"""
P2 = """task: segment
model: {model}
epochs: {epochs}
batch_size: 2
image_size: 64
snapshot_tiles: 1
cache: memory
"""


@pytest.fixture(scope="module")
def course(tmp_path_factory) -> tuple[Path, Path]:
    """A tiny dlcv folder (4 classes; 2+2 tiles of 64 px) and a folder of tiny recipes."""
    root = tmp_path_factory.mktemp("course")
    make_classification_data(root / "dlcv" / "p1_data", num_classes=4, train_per_class=4, val_per_class=2)
    make_segmentation_data(root / "dlcv" / "p2_data", n_train=2, n_val=2, size=64)
    recipes = root / "recipes"
    recipes.mkdir()
    (recipes / "tiny_p1.yaml").write_text(P1)
    (recipes / "tiny_fcn32s.yaml").write_text(P2.format(model="fcn32s_resnet34", epochs=2))
    (recipes / "tiny_fcn8s.yaml").write_text(P2.format(model="fcn8s_resnet34", epochs=2))
    (recipes / "tiny_long.yaml").write_text(P2.format(model="fcn8s_resnet34", epochs=4))
    return root / "dlcv", recipes


def _argv(data: Path, out: Path, recipes: Path, names: str, *extra: str) -> list[str]:
    listed = ",".join(str(recipes / f"{n}.yaml") for n in names.split(","))
    # one process a run: on a 2-core CI machine the laptop profile would start two (tested on their own below)
    procs = [] if "--procs" in extra else ["--procs", "1"]
    return ["reproduce", "--data", str(data), "--out", str(out), "--recipes", listed, "--device", "cpu", *procs, *extra]


def test_profiles_name_the_homework_recipes_and_snapshots_follow_the_epochs():
    assert PROFILES["gpu"].p1 == ("p1_vgg16bn",)
    assert PROFILES["gpu"].p2 == ("p2_fcn32s_vgg16", "p2_fcn8s_resnet34")
    assert PROFILES["laptop"].p1 == ("p1_laptop_long",) and "p2_laptop_fcn8s" in PROFILES["laptop"].p2
    assert snapshot_epochs(50) == [5, 25, 50] and snapshot_epochs(2) == [1, 2] and snapshot_epochs(1) == [1]


@pytest.mark.slow
def test_reproduce_end_to_end_then_a_rerun_skips_everything(course, tmp_path, capsys):
    data, recipes = course
    out = tmp_path / "out"
    assert main(_argv(data, out, recipes, "tiny_p1,tiny_fcn32s,tiny_fcn8s")) == 0
    text = capsys.readouterr().out
    first, last = text.splitlines()[0], text.rsplit("fcnlab reproduce:", 1)[1]
    assert first.startswith("fcnlab reproduce:") and "Expected time: about 0.5 min" in text
    assert "tiny_fcn32s, tiny_fcn8s (no estimate in the recipe)" in text
    assert "3 of 3 runs trained in full" in last and str(out / "report.html") in last
    runs = out / "runs"
    assert (runs / "tiny_p1" / "tsne.png").is_file() and (
        runs / "tiny_p1" / "eval" / "validation" / "eval.json"
    ).is_file()
    for name in ("tiny_fcn32s", "tiny_fcn8s"):
        assert {p.name for p in (runs / name / "snapshots").glob("epoch_*.png")} == {"epoch_001.png", "epoch_002.png"}
        assert len(list((runs / name / "masks").glob("*_mask.png"))) == 2
    assert (out / "compare.md").is_file() and (out / "report.html").is_file() and (out / "summary.md").is_file()
    assert "--snapshot-epochs 1,2" in text
    stamp = (runs / "tiny_p1" / "last.pt").stat().st_mtime_ns
    assert main(_argv(data, out, recipes, "tiny_p1,tiny_fcn32s,tiny_fcn8s")) == 0
    again = capsys.readouterr().out
    assert again.count("done before, skipped") == 11 and "$ fcnlab" not in again and "other options" not in again
    assert main([*_argv(data, out, recipes, "tiny_p1"), "--set", "lr=0.01"]) == 0  # changed: said, not redone
    assert f"done with other options; delete {runs / 'tiny_p1'}" in capsys.readouterr().out
    assert (runs / "tiny_p1" / "last.pt").stat().st_mtime_ns == stamp


@pytest.mark.slow
def test_an_interrupted_run_resumes_and_finished_steps_are_skipped(course, tmp_path, capsys, monkeypatch):
    data, recipes = course
    out = tmp_path / "out"
    real = reproduce_run.run_step
    run = out / "runs" / "tiny_long"

    def interrupt_after_first_checkpoint(step, *args, **kwargs):
        if step.key == "train-tiny_long":  # Ctrl-C once the run has its first last.pt

            def watch() -> None:
                while not (run / "last.pt").is_file():
                    time.sleep(0.02)
                os.kill(os.getpid(), signal.SIGINT)

            threading.Thread(target=watch, daemon=True).start()
        return real(step, *args, **kwargs)

    monkeypatch.setattr(reproduce_run, "run_step", interrupt_after_first_checkpoint)
    argv = _argv(data, out, recipes, "tiny_p1,tiny_long", "--skip", "report,tsne,masks")
    assert main(argv) == 130
    err = capsys.readouterr().err
    assert "run the same fcnlab reproduce command again" in err
    state = out / STATE
    assert (state / "train-tiny_p1.done").is_file() and not (state / "train-tiny_long.done").is_file()
    assert (run / "last.pt").is_file()
    monkeypatch.setattr(reproduce_run, "run_step", real)
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "train tiny_p1 (P1 classification, 2 epochs): done before, skipped" in text
    assert f"--resume {run}" in text and "2 of 2 runs trained in full" in text
    assert (state / "train-tiny_long.done").is_file() and (run / "eval" / "validation" / "eval.json").is_file()


def test_a_spent_budget_leaves_runs_untrained_and_says_so(course, tmp_path, capsys):
    data, recipes = course
    out = tmp_path / "out"
    assert main(_argv(data, out, recipes, "tiny_p1", "--budget", "0.01")) == 0
    text = capsys.readouterr().out
    assert "not started" in text and "skipped (tiny_p1 has no best.pt yet)" in text
    assert "tiny_p1" in text.rsplit("fcnlab reproduce:", 1)[1] and "not trained" in text
    assert "run the same command again to continue" in text


def test_mistakes_are_refused_before_anything_is_written(course, tmp_path, capsys):
    data, recipes = course
    out = tmp_path / "out"
    assert main(["reproduce", "--data", str(tmp_path / "nowhere"), "--out", str(out)]) == 2
    assert "not a folder" in capsys.readouterr().err
    assert main(_argv(data, out, recipes, "tiny_p1", "--only", "p3")) == 2  # --only with --recipes: still checked
    assert main(["reproduce", "--data", str(data), "--out", str(out), "--only", "p3"]) == 2
    assert "option --only: p3 is not a part" in capsys.readouterr().err
    assert main(_argv(data, out, recipes, "tiny_p9")) == 2
    assert "config file does not exist" in capsys.readouterr().err
    assert main(_argv(data, out, recipes, "tiny_p1", "--skip", "train")) == 2
    assert main(_argv(data, out, recipes, "tiny_p1", "--set", "epochs")) == 2
    assert "expected KEY=VALUE" in capsys.readouterr().err
    assert not out.exists()
    (out / "runs" / "tiny_p1").mkdir(parents=True)  # someone else's folder where a run would go
    assert main(_argv(data, out, recipes, "tiny_p1")) == 2
    assert "were not written by fcnlab reproduce" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:  # abbreviations of long options are refused, with the option meant
        main(["reproduce", "--data", str(data), "--out", str(tmp_path / "o2"), "--budg", "5"])
    assert e.value.code == 2 and "--budg: did you mean --budget?" in capsys.readouterr().err


@pytest.mark.parametrize("native", [True, False])
def test_intro_says_when_bf16_recipes_will_run_in_fp32(course, tmp_path, monkeypatch, native):
    data, recipes = course
    (recipes / "tiny_bf16.yaml").write_text(P1 + "amp: bf16\n")
    monkeypatch.setattr(reproduce_run, "cpu_computes_bf16", lambda: native)
    opts = reproduce_run.Options(data, tmp_path / "out", PROFILES["laptop"], device="cpu")
    listed = [str(recipes / "tiny_p1.yaml"), str(recipes / "tiny_bf16.yaml")]
    jobs = make_jobs(opts.profile, data, opts.out, ("p1", "p2"), False, listed)
    assert [j.amp for j in jobs] == ["auto", "bf16"]
    intro = reproduce_run._intro(opts, jobs)
    line = "This CPU has no AVX-512/AMX bf16: tiny_bf16 run in fp32 here (emulated bf16 is slower), so they train"
    assert (line in intro) is not native
    opts.settings = ["amp=off"]  # no recipe runs in bf16 then
    assert "This CPU" not in reproduce_run._intro(opts, jobs)
    opts.settings = ["amp=bf16"]  # every recipe does
    assert ("tiny_p1, tiny_bf16 run in fp32" in reproduce_run._intro(opts, jobs)) is not native
    opts.settings, opts.device = [], "cuda"
    assert "This CPU" not in reproduce_run._intro(opts, jobs)


def test_the_laptop_profile_trains_in_two_processes_on_a_cpu_of_two_cores(course, tmp_path, monkeypatch):
    """On a CPU of 2+ cores the laptop profile trains each run in ``--procs 2`` with half the recipe's batch each;
    not on a GPU, not on one core, not with the gpu profile, not a recipe whose batch does not divide, not when
    the user sets a batch; ``--procs N`` says it outright. A resumed run keeps the processes it started with."""
    data, recipes = course
    (recipes / "tiny_odd.yaml").write_text(
        P2.format(model="fcn8s_resnet34", epochs=2).replace("batch_size: 2", "batch_size: 3")
    )
    listed = [str(recipes / f"{n}.yaml") for n in ("tiny_p1", "tiny_fcn8s", "tiny_odd")]
    out = tmp_path / "out"

    def procs(
        profile: str = "laptop", cpu: bool = True, cores: int = 2, asked: int | None = None, settings: tuple = ()
    ) -> int:
        monkeypatch.setattr(reproduce_run, "usable_cores", lambda: cores)
        monkeypatch.setattr(reproduce_run, "_on_cpu", lambda device: cpu)
        opts = reproduce_run.Options(data, out, PROFILES[profile], device="cpu", procs=asked, settings=list(settings))
        return reproduce_run.training_procs(opts)

    assert procs() == 2 and procs(cores=16) == 2
    assert procs(cpu=False) == procs(cores=1) == procs("gpu") == 1
    assert procs(cpu=False, asked=3) == 3 and procs(asked=1) == 1
    assert procs(settings=("batch_size=4",)) == procs(asked=2, settings=("procs=3",)) == 1  # the user's --set wins

    def train_argv(n: int, options: list[str] | None = None) -> dict[str, list[str]]:
        jobs = make_jobs(PROFILES["laptop"], data, out, ("p1", "p2"), False, listed, n)
        steps = reproduce_plan.plan_steps(jobs, out, [], options or [])
        return {s.run: s.argv for s in steps if s.key.startswith("train-") and s.run}

    two = train_argv(2)
    for name, batch in (("tiny_p1", "4"), ("tiny_fcn8s", "1")):  # the recipes' batches: 8 and 2
        at = two[name].index("--procs")
        assert two[name][at : at + 4] == ["--procs", "2", "--batch-size", batch]
    assert "--procs" not in two["tiny_odd"]  # 3 tiles do not split in two
    assert not any("--procs" in argv for argv in train_argv(1).values())
    mine = train_argv(procs(settings=("batch_size=4",)), ["--batch-size", "4"])
    assert not any(argv.count("--procs") for argv in mine.values())

    job = make_jobs(PROFILES["laptop"], data, out, ("p2",), False, listed[1:2], 2)[0]
    job.run_dir.mkdir(parents=True)
    (job.run_dir / "config.yaml").write_text("task: segment\nbatch_size: 1\n")  # started in two processes
    assert job.procs_argv(resume=True) == ["--procs", "2"]
    (job.run_dir / "config.yaml").write_text("task: segment\nbatch_size: 2\n")  # started in one
    assert job.procs_argv(resume=True) == []
    intro = reproduce_run._intro(reproduce_run.Options(data, out, PROFILES["laptop"]), [job])
    assert "2 epochs, 2 processes" in intro


def test_a_bad_procs_count_is_refused(course, tmp_path, capsys):
    data, recipes = course
    assert main(_argv(data, tmp_path / "out", recipes, "tiny_p1", "--procs", "0")) == 2
    assert "option --procs: must be 1 or more, got 0" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_reproduce_trains_a_run_in_two_processes(course, tmp_path, capsys):
    """End to end with ``--procs 2``: the run trains as two DDP processes (its checkpoint says so) and is evaluated."""
    import torch

    data, recipes = course
    out = tmp_path / "out"
    assert main(_argv(data, out, recipes, "tiny_p1", "--procs", "2", "--skip", "report,tsne")) == 0
    text = capsys.readouterr().out
    assert "tiny_p1" in text and "2 processes" in text
    run = out / "runs" / "tiny_p1"
    assert torch.load(run / "last.pt", weights_only=True)["world_size"] == 2
    assert (run / "eval" / "validation" / "eval.json").is_file()
