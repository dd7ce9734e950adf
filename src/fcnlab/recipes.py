"""Recipes: the YAML files that hold a training config, shipped in the package or given as a path.

``--config p1_vgg16bn`` finds ``fcnlab/configs/p1_vgg16bn.yaml`` (importlib.resources, so it works after a
non-editable install); ``--config my.yaml`` reads that file. The resolved config of a run is written back as
``config.yaml`` by :func:`save_yaml`.

A recipe may carry an ``about:`` mapping that is not a config key: whether its numbers are ``measured`` (and
where: a run folder under ``docs/results/``) or ``estimated``, the minutes ``train`` plus evaluation take and on
what hardware. :func:`load_yaml` leaves it out of the config; :func:`recipe_info` reads it (``fcnlab recipes``,
the ``--config`` help and ``fcnlab reproduce``'s time estimate).
"""

from __future__ import annotations

import difflib
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from fcnlab.errors import ConfigError

#: The recipe key that describes the recipe (not a config key).
ABOUT = "about"
#: What ``about: numbers:`` may say.
NUMBERS = ("measured", "estimated")


@dataclass(frozen=True)
class RecipeInfo:
    """What a recipe says about itself: its task, whether its numbers are measured, its time and hardware."""

    name: str
    task: str
    numbers: str  # measured, estimated, or "unstated" for a file without an about: block
    evidence: str  # where the measured numbers are (a run folder), or how to measure them
    minutes: float | None  # train + eval on ``hardware``; None when unstated
    hardware: str
    summary: str  # the first line of the recipe's header comment


def shipped_recipes() -> list[str]:
    """Names of the recipes shipped inside the package (``fcnlab/configs/<name>.yaml``), sorted."""
    from importlib.resources import files

    folder = files("fcnlab") / "configs"
    return sorted(entry.name.rsplit(".", 1)[0] for entry in folder.iterdir() if entry.name.endswith(".yaml"))


def _is_path(value: str) -> bool:
    """``--config`` values naming a file (a folder separator or a YAML suffix) rather than a shipped recipe."""
    return "/" in value or "\\" in value or value.lower().endswith((".yaml", ".yml"))


def recipe_text(config: str | Path) -> tuple[str, str]:
    """``(YAML text, where it came from)`` of ``--config``: a file path, or the name of a shipped recipe.

    A value with a folder separator or a ``.yaml``/``.yml`` suffix is a file; any other value is looked up
    among :func:`shipped_recipes` (``p1_vgg16bn``), so recipes work from any folder and after a
    non-editable install. An existing file of that exact name still wins.
    """
    text = str(config)
    path = Path(text)
    if isinstance(config, Path) or _is_path(text) or path.is_file():
        if not path.is_file():
            what = "is a folder, not a YAML file" if path.is_dir() else "config file does not exist"
            raise ConfigError(
                f"{path}: {what}; give a YAML file or the name of a shipped recipe ({', '.join(shipped_recipes())})"
            )
        try:
            return path.read_text(), str(path)
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"{path}: cannot read config file ({e})") from None
    from importlib.resources import files

    names = shipped_recipes()
    if text not in names:
        close = difflib.get_close_matches(text, names, n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        raise ConfigError(
            f"--config {text}: no such file and no shipped recipe of that name; {hint}"
            f"shipped recipes: {', '.join(names)} (or give a path to a YAML file)"
        )
    return (files("fcnlab") / "configs" / f"{text}.yaml").read_text(), f"recipe {text}"


def _read(path: str | Path) -> tuple[dict[str, Any], str, str]:
    """``(mapping, text, where)`` of a recipe; ConfigError naming it when it is not a YAML mapping."""
    text, where = recipe_text(path)
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{where}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping of keys to values at the top level")
    return data, text, where


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML recipe (a file, or a shipped recipe's name: see :func:`recipe_text`) as config keys (its
    ``about:`` block left out); errors name it."""
    data, _, where = _read(path)
    _about(data.pop(ABOUT, None), where)
    return data


def _about(block: Any, where: str) -> dict[str, Any]:
    """The checked ``about:`` mapping (empty when absent); ConfigError naming the recipe when it is malformed."""
    if block is None:
        return {}
    if not isinstance(block, dict):
        raise ConfigError(f"{where}: {ABOUT}: expected a mapping (numbers, evidence, minutes, hardware)")
    unknown = sorted(set(block) - {"numbers", "evidence", "minutes", "hardware"})
    if unknown:
        raise ConfigError(
            f"{where}: {ABOUT}: unknown key(s) {', '.join(map(str, unknown))}; valid: numbers, "
            f"evidence, minutes, hardware"
        )
    if block.get("numbers", NUMBERS[1]) not in NUMBERS:
        raise ConfigError(f"{where}: {ABOUT}: numbers must be {' or '.join(NUMBERS)}, got {block['numbers']!r}")
    minutes = block.get("minutes")
    if minutes is not None and (isinstance(minutes, bool) or not isinstance(minutes, (int, float)) or minutes <= 0):
        raise ConfigError(f"{where}: {ABOUT}: minutes must be a positive number, got {minutes!r}")
    return block


def recipe_info(config: str | Path) -> RecipeInfo:
    """What the recipe ``config`` (a shipped name or a file) says about itself (:class:`RecipeInfo`)."""
    data, text, where = _read(config)
    about = _about(data.get(ABOUT), where)
    header = " ".join(line.lstrip("#").strip() for line in text.splitlines() if line.startswith("#"))
    summary = textwrap.shorten(header.split(". ", 1)[0].rstrip("."), 110, placeholder=" ...") if header else ""
    name = Path(str(config)).stem if _is_path(str(config)) or isinstance(config, Path) else str(config)
    minutes = about.get("minutes")
    return RecipeInfo(
        name=name,
        task=str(data.get("task", "classify")),
        numbers=str(about.get("numbers", "unstated")),
        evidence=str(about.get("evidence", "")),
        minutes=float(minutes) if minutes is not None else None,
        hardware=str(about.get("hardware", "")),
        summary=summary,
    )


def recipes_for(task: str | None = None) -> list[RecipeInfo]:
    """:func:`recipe_info` of every shipped recipe (of ``task`` only, when given), by name."""
    infos = [recipe_info(name) for name in shipped_recipes()]
    return [i for i in infos if task is None or i.task == task]


def describe(info: RecipeInfo) -> str:
    """One line for listings: ``p1_laptop (measured: docs/results/cpu/p1_laptop ...; 19 min on ...)``."""
    time = f"; about {info.minutes:g} min on {info.hardware}" if info.minutes else ""
    what = f"{info.numbers}: {info.evidence}" if info.evidence else info.numbers
    return f"{info.name} ({what}{time})"


def save_yaml(cfg: Any, path: str | Path) -> None:
    """Write a resolved config (a TrainConfig or its dict) as YAML, atomically."""
    from fcnlab.runtime.files import atomic_write_text

    data = cfg.to_dict() if hasattr(cfg, "to_dict") else dict(cfg)
    atomic_write_text(path, yaml.safe_dump(data, sort_keys=False))
