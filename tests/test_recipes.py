"""Recipes ship inside the package: ``--config NAME`` finds them from any folder, also after ``pip install``."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fcnlab.errors import ConfigError
from fcnlab.recipes import load_yaml, recipe_text, shipped_recipes

REPO = Path(__file__).resolve().parents[1]
SEED = ("p1_vgg16bn", "p2_fcn32s_vgg16", "p2_fcn8s_resnet34")


def test_the_seed_recipes_ship_in_the_package():
    assert set(SEED) <= set(shipped_recipes())
    assert not (REPO / "configs").exists(), "recipes live only in src/fcnlab/configs (one copy)"


def test_a_recipe_is_found_by_name_from_another_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    values = load_yaml("p1_vgg16bn")
    assert values["task"] == "classify" and values["model"] == "vgg16_bn"
    assert recipe_text("p2_fcn8s_resnet34")[1] == "recipe p2_fcn8s_resnet34"


def test_a_path_still_works_and_wins_over_a_name(tmp_path, monkeypatch):
    own = tmp_path / "mine.yaml"
    own.write_text("task: segment\nepochs: 3\n")
    assert load_yaml(own)["epochs"] == 3
    assert load_yaml(str(own))["epochs"] == 3
    monkeypatch.chdir(tmp_path)
    (tmp_path / "p1_vgg16bn").write_text("task: classify\nepochs: 2\n")  # a file of that exact name
    assert load_yaml("p1_vgg16bn")["epochs"] == 2


def test_an_unknown_name_lists_the_shipped_recipes(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as e:
        load_yaml("p1_vgg16")
    msg = str(e.value)
    assert "no shipped recipe of that name; did you mean p1_vgg16bn?" in msg
    assert all(name in msg for name in SEED) and "\n" not in msg
    with pytest.raises(ConfigError, match="missing.yaml: config file does not exist"):
        load_yaml("missing.yaml")


def test_the_cli_takes_a_recipe_name(tmp_path, monkeypatch, capsys):
    from fcnlab.cli.main import main

    monkeypatch.chdir(tmp_path)
    # A recipe name resolves; the missing training folder is what stops the run (one line, exit 2).
    assert (
        main(
            [
                "classify",
                "train",
                "--config",
                "p1_vgg16bn",
                "--data",
                str(tmp_path / "none"),
                "--val",
                str(tmp_path / "none"),
                "--out",
                str(tmp_path / "run"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no shipped recipe" not in err[0] and str(tmp_path / "none") in err[0]


@pytest.mark.slow
def test_a_non_editable_install_finds_its_recipes(tmp_path):
    """``pip install --target`` (no editable link to the source tree) and run from an unrelated folder."""
    source = tmp_path / "source"  # a copy: building leaves build/ and *.egg-info beside the sources
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    shutil.copytree(REPO / "src", source / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    target = tmp_path / "site"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(target),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0 and "setuptools" in done.stderr:
        pytest.skip(f"cannot build without network: {done.stderr.strip().splitlines()[-1]}")
    assert done.returncode == 0, done.stderr
    assert sorted(p.stem for p in (target / "fcnlab" / "configs").glob("*.yaml")) == shipped_recipes()
    env = {**os.environ, "PYTHONPATH": str(target)}
    code = (
        "import fcnlab.recipes as c; print(c.__file__); "
        "print(c.load_yaml('p2_fcn32s_vgg16')['model'], len(c.shipped_recipes()))"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=True
    )
    where, answer = run.stdout.strip().splitlines()
    assert Path(where).is_relative_to(target)
    assert answer == f"fcn32s_vgg16 {len(shipped_recipes())}"


def test_every_shipped_recipe_says_whether_its_numbers_are_measured():
    from fcnlab.recipes import NUMBERS, recipes_for

    for info in recipes_for():
        assert info.numbers in NUMBERS and info.minutes and info.hardware and info.summary, info
        if info.numbers == "measured":  # names the run folder its numbers come from, and it is in the repository
            folder = info.evidence.split()[0]
            assert (REPO / folder / "metrics.csv").is_file(), info
        text = recipe_text(info.name)[0]
        assert "../" not in text and "issue" not in text.lower(), info.name  # cites only files of the repository


def test_the_about_block_is_not_a_config_key_and_is_checked(tmp_path):
    from fcnlab.config import from_dict
    from fcnlab.recipes import recipe_info

    assert "about" not in load_yaml("p1_vgg16bn") and from_dict(load_yaml("p1_vgg16bn")).model == "vgg16_bn"
    own = tmp_path / "mine.yaml"
    own.write_text("about:\n  numbers: guessed\ntask: segment\n")
    with pytest.raises(ConfigError, match="numbers must be measured or estimated"):
        load_yaml(own)
    own.write_text("task: segment\nepochs: 3\n")
    assert recipe_info(own).numbers == "unstated" and recipe_info(own).task == "segment"


def test_recipe_listings_show_the_task_and_the_numbers(capsys):
    from fcnlab.cli.main import main

    assert main(["recipes"]) == 0
    out = capsys.readouterr().out
    assert "P1 (classify train):" in out and "P2 (segment train):" in out
    assert "p1_laptop_long (measured: docs/results/cpu/p1_laptop_long" in out and "p1_best (estimated" in out
    with pytest.raises(SystemExit):
        main(["segment", "train", "--help"])
    shown = " ".join(capsys.readouterr().out.split())  # help lines are wrapped
    assert "p2_fcn8s_resnet34 (measured)" in shown and "p1_vgg16bn" not in shown  # P1 recipes not offered to P2
