"""TrainConfig: recipes, precedence, unknown keys (listed, with a suggestion) and invalid values."""

from __future__ import annotations

import argparse
import dataclasses
import math

import pytest

from fcnlab import config
from fcnlab.cli.options import add_config_arguments, resolve
from fcnlab.config import TrainConfig, from_dict
from fcnlab.errors import ConfigError
from fcnlab.recipes import load_yaml, save_yaml, shipped_recipes


def parse(*args: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_config_arguments(parser)
    return parser.parse_args(list(args))


@pytest.mark.parametrize("recipe", shipped_recipes())
def test_every_shipped_recipe_is_valid(recipe):
    values = load_yaml(recipe)
    cfg = resolve(parse("--config", recipe), values["task"])
    assert cfg.task == values["task"] and cfg.model == values["model"]


def test_precedence_defaults_task_recipe_command_line(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("task: segment\nepochs: 7\nlr: 0.02\n")
    cfg = resolve(parse("--config", str(recipe), "--lr", "0.5", "--snapshot-epochs", "1,3"), "segment")
    assert cfg.model == "fcn32s_vgg16" and cfg.batch_size == 8  # task defaults
    assert cfg.epochs == 7 and cfg.lr == 0.5 and cfg.snapshot_epochs == [1, 3]  # recipe < command line
    assert cfg.momentum == TrainConfig().momentum  # dataclass default


def test_recipe_for_the_other_task_is_refused(tmp_path):
    recipe = tmp_path / "r.yaml"
    recipe.write_text("task: segment\n")
    with pytest.raises(ConfigError, match="recipe is for task 'segment', not 'classify'"):
        resolve(parse("--config", str(recipe)), "classify")


def test_unknown_keys_are_rejected_with_every_valid_key_listed():
    with pytest.raises(ConfigError) as e:
        from_dict({"learning_rate": 0.1, "epoch": 3, "zzz": 1}, "r.yaml")
    msg = str(e.value)
    assert msg.startswith("r.yaml: unknown key(s) epoch (did you mean epochs?), learning_rate (did you mean lr?), zzz;")
    assert msg.endswith("valid keys: " + ", ".join(config.field_names()))
    assert "\n" not in msg


@pytest.mark.parametrize(
    "values, option",
    [
        ({"lr": -0.1}, "option lr (--lr): must be > 0, got -0.1"),
        ({"batch_size": 0}, "option batch_size (--batch-size): must be > 0, got 0"),
        ({"epochs": "two"}, "option epochs (--epochs): expected int, got 'two'"),
        ({"epochs": 1.5}, "option epochs (--epochs): expected int"),
        ({"lr": float("nan")}, "option lr (--lr): must be a finite number"),
        ({"weight_decay": -1e-4}, "option weight_decay (--weight-decay): must be >= 0"),
        ({"optimizer": "adam"}, "option optimizer (--optimizer): 'adam' is not one of sgd, adamw"),
        ({"device": "gpu"}, "option device (--device): 'gpu' is not a device"),
        ({"model": "fcn8s_resnet34"}, "'fcn8s_resnet34' is a segment model; for classify choose one of"),
        ({"model": "unet"}, "'unet' is not a registered model"),
        ({"task": "segment", "image_size": 100}, "multiple of 32"),
        ({"min_scale": 2.0, "max_scale": 1.0}, "need 0 < min_scale <= max_scale"),
        ({"label_smoothing": 1.0}, "must be < 1"),
        ({"task": "segment", "color_jitter": 1.0}, "option color_jitter (--color-jitter): must be < 1"),
        ({"task": "segment", "color_jitter": -0.1}, "option color_jitter (--color-jitter): must be >= 0"),
        ({"snapshot_epochs": [0, 5]}, "epochs start at 1"),
        ({"image_size": 16}, "option image_size (--image-size): must be at least 32"),
        ({"batch_size": 1}, "classification needs at least 2 images per step"),
        ({"augment_policy": "autoaugment"}, "'autoaugment' is not one of none, trivialaugment, randaugment"),
        ({"random_erasing": 1.5}, "option random_erasing (--random-erasing): a probability, must be in [0, 1]"),
        ({"mix_prob": -0.1}, "option mix_prob (--mix-prob): a probability"),
        ({"cutmix": -1.0}, "option cutmix (--cutmix): must be >= 0"),
        ({"randaugment_magnitude": 31}, "a magnitude bin, must be in 0..30"),
        ({"ema_decay": 1.0}, "option ema_decay (--ema-decay): must be in [0, 1)"),
        ({"nesterov": True, "momentum": 0.0}, "Nesterov momentum needs optimizer sgd and momentum > 0"),
        ({"task": "segment", "mixup": 0.2}, "option mixup (--mixup): a classify option; segment does not use it"),
    ],
)
def test_invalid_values_name_the_option(values, option):
    with pytest.raises(ConfigError) as e:
        from_dict(values)
    assert option in str(e.value)


def test_yaml_off_and_on_stay_strings(tmp_path):
    """YAML 1.1 reads ``off`` as False: ``--cache off`` / ``amp: off`` must still mean "off"."""
    cfg = resolve(parse("--cache", "off", "--amp", "off"), "classify")
    assert (cfg.cache, cfg.amp) == ("off", "off")
    recipe = tmp_path / "r.yaml"
    recipe.write_text("cache: off\namp: off\ndeterministic: yes\n")
    cfg = resolve(parse("--config", str(recipe)), "classify")
    assert (cfg.cache, cfg.amp, cfg.deterministic) == ("off", "off", True)


def test_saved_config_round_trips(tmp_path):
    cfg = from_dict({"task": "segment", "snapshot_epochs": [5, 25], "lr": 1e-3, "weights": None})
    save_yaml(cfg, tmp_path / "config.yaml")
    again = from_dict(load_yaml(tmp_path / "config.yaml"))
    assert again == cfg and not math.isnan(again.lr)


@pytest.mark.parametrize("text, message", [("a: [1, 2\n", "not valid YAML"), ("- 1\n- 2\n", "expected a mapping")])
def test_broken_recipes_name_the_file(tmp_path, text, message):
    recipe = tmp_path / "bad.yaml"
    recipe.write_text(text)
    with pytest.raises(ConfigError, match=message) as e:
        load_yaml(recipe)
    assert str(recipe) in str(e.value)
    with pytest.raises(ConfigError, match="config file does not exist"):
        load_yaml(tmp_path / "missing.yaml")


#: A value other than the default for every key that belongs to one task (a new such key must be added here).
OWN_VALUES = {
    "val_csv": "labels.csv",
    "pad": 2,
    "augment_policy": "randaugment",
    "randaugment_ops": 3,
    "randaugment_magnitude": 5,
    "random_erasing": 0.5,
    "mixup": 0.2,
    "learn_upsampling": True,
    "input_size": 128,
    "min_scale": 0.5,
    "max_scale": 2.0,
    "color_jitter": 0.2,
    "class_weights": "median",
    "ignore_unknown": True,
    "loss": "lovasz",
    "sampling": "rare",
    "rare_classes": [1],
    "repeat_threshold": 0.5,
    "snapshot_epochs": [5],
    "snapshot_tiles": 2,
    "snapshot_images": ["0001_sat.jpg"],
}


def test_a_keys_task_is_recorded_once_and_its_help_prefix_derives_from_it():
    owned = {name for name in config.field_names() if config.field_task(name)}
    assert owned == set(OWN_VALUES)
    helps = config.field_help()
    for spec in dataclasses.fields(TrainConfig):
        raw, owner = spec.metadata["help"], config.field_task(spec.name)
        # a shared key may describe each task ("classify: ...; segment: ..."); a key of one task says so only in
        # option(task=...)
        named = [t for t in ("classify", "segment") if f"{t}:" in raw]
        assert len(named) != 1, f"{spec.name}: say the task with option(task=...) only"
        assert helps[spec.name] == (f"{owner}: {raw}" if owner else raw)


@pytest.mark.parametrize("name", sorted(OWN_VALUES))
def test_keys_of_the_other_task_are_refused_in_recipes(name):
    owner = config.field_task(name)
    other = next(t for t in ("classify", "segment") if t != owner)
    assert getattr(from_dict({"task": owner, name: OWN_VALUES[name]}), name) == OWN_VALUES[name]
    with pytest.raises(ConfigError) as e:
        from_dict({"task": other, name: OWN_VALUES[name]})
    flag = name.replace("_", "-")
    assert str(e.value) == (
        f"option {name} (--{flag}): a {owner} option; {other} does not use it (remove it from the recipe)"
    )
    assert getattr(from_dict({"task": other}), name) == config.task_defaults(other)[name]  # its default is fine
