"""``train --help`` in groups with defaults and choices; each task's own options; ``--flag``/``--no-flag``;
``--version``; ``--print-config``; ``fcnlab --help`` without torch."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from fcnlab import __version__, config, recipes
from fcnlab.cli.main import main
from fcnlab.models import list_models

SRC = Path(__file__).resolve().parents[1] / "src"


def help_text(capsys, *argv: str) -> str:
    with pytest.raises(SystemExit) as e:
        main([*argv, "--help"])
    assert e.value.code == 0
    return capsys.readouterr().out


def test_top_level_help_imports_no_torch():
    code = (
        "import sys, io, contextlib\nfrom fcnlab.cli.main import main\n"
        "with contextlib.redirect_stdout(io.StringIO()) as out:\n"
        "    try:\n        main(['--help'])\n    except SystemExit:\n        pass\n"
        "print('torch' in sys.modules, 'classify' in out.getvalue() and 'segment' in out.getvalue())"
    )
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120, check=True
    )
    assert done.stdout.split() == ["False", "True"]


def test_every_config_field_has_a_help_group():
    ungrouped = [n for n in config.field_names() if n != "task" and config.field_group(n) == config.DEFAULT_GROUP]
    assert ungrouped == [], f"give these TrainConfig fields option(..., group=...): {ungrouped}"


def test_train_help_is_grouped_with_defaults_and_choices(capsys):
    text = help_text(capsys, "segment", "train")
    titles = ["data:", "model:", "optimisation:", "schedule:", "augmentation:", "runtime:", "output:"]
    positions = [text.index(f"\n{t}\n") for t in titles]
    assert positions == sorted(positions)
    section = text[text.index("\noptimisation:\n") : text.index("\nschedule:\n")]
    assert "--lr X" in section and "(default: 0.01)" in section  # the segment task's own default
    assert "--optimizer {sgd,adamw}" in section
    flat = " ".join(text.split())
    assert "--pretrained [BOOL]" in flat and "--no-pretrained: false (default: false)" in flat
    # the registry's own listing, so models registered by other tests still match
    assert f"choices: {', '.join(list_models('segment'))}" in flat and "fcn8s_resnet34" in list_models("segment")
    assert " V " not in text
    p1 = help_text(capsys, "classify", "train")
    assert "(default: 0.05)" in p1 and f"choices: {', '.join(list_models('classify'))}" in " ".join(p1.split())


@pytest.mark.parametrize(
    ("task", "own", "other"),
    [
        ("classify", ["--val-csv", "--pad"], ["--snapshot-epochs", "--ignore-unknown", "--learn-upsampling"]),
        ("segment", ["--snapshot-epochs", "--snapshot-images", "--class-weights"], ["--val-csv", "--pad"]),
    ],
)
def test_each_task_lists_only_its_options(capsys, task, own, other):
    text = help_text(capsys, task, "train")
    assert all(f"{o} " in text for o in own)
    assert not any(f"{o} " in text or f"{o}\n" in text for o in other)


@pytest.mark.parametrize(
    ("task", "argv", "message"),
    [
        (
            "classify",
            ["--snapshot-epochs", "5,25,50"],
            "option --snapshot-epochs is for segment training only "
            "('fcnlab segment train'); 'fcnlab classify train' does not use it",
        ),
        ("classify", ["--no-ignore-unknown"], "option --ignore-unknown is for segment training only"),
        ("segment", ["--val-csv", "x.csv"], "option --val-csv is for classify training only"),
    ],
)
def test_the_other_tasks_options_are_refused_in_one_line(capsys, tmp_path, task, argv, message):
    assert main([task, "train", *argv, "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0]
    assert not (tmp_path / "run").exists()


def print_config(capsys, *argv: str) -> dict:
    assert main(["segment", "train", *argv, "--print-config"]) == 0
    return yaml.safe_load(capsys.readouterr().out)


def test_flag_alone_is_true_no_flag_is_false_and_values_still_work(capsys):
    assert print_config(capsys, "--pretrained")["pretrained"] is True
    assert print_config(capsys, "--config", "p2_fcn8s_resnet34", "--no-pretrained")["pretrained"] is False
    assert print_config(capsys, "--config", "p2_fcn8s_resnet34", "--pretrained", "false")["pretrained"] is False
    got = print_config(capsys, "--augment", "--lr", "0.2", "--no-channels-last", "--learn-upsampling", "yes")
    assert (got["augment"], got["lr"], got["channels_last"], got["learn_upsampling"]) == (True, 0.2, False, True)


def test_print_config_is_the_resolved_recipe(capsys):
    got = print_config(capsys, "--config", "p2_fcn8s_resnet34", "--epochs", "3", "--snapshot-images", "0013_sat.jpg")
    want = config.from_dict(
        {**recipes.load_yaml("p2_fcn8s_resnet34"), "epochs": 3, "snapshot_images": ["0013_sat.jpg"]}
    ).to_dict()
    assert got == want


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out.strip() == f"fcnlab {__version__}"
