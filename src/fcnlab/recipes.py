"""Recipes: the YAML files that hold a training config, shipped in the package or given as a path.

``--config p1_vgg16bn`` finds ``fcnlab/configs/p1_vgg16bn.yaml`` (importlib.resources, so it works after a
non-editable install); ``--config my.yaml`` reads that file. The resolved config of a run is written back as
``config.yaml`` by :func:`save_yaml`.
"""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import yaml

from fcnlab.errors import ConfigError


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
            raise ConfigError(f"{path}: {what}; give a YAML file or the name of a shipped recipe "
                              f"({', '.join(shipped_recipes())})")
        try:
            return path.read_text(), str(path)
        except (OSError, UnicodeDecodeError) as e:
            raise ConfigError(f"{path}: cannot read config file ({e})") from None
    from importlib.resources import files

    names = shipped_recipes()
    if text not in names:
        close = difflib.get_close_matches(text, names, n=1)
        hint = f"did you mean {close[0]}? " if close else ""
        raise ConfigError(f"--config {text}: no such file and no shipped recipe of that name; {hint}"
                          f"shipped recipes: {', '.join(names)} (or give a path to a YAML file)")
    return (files("fcnlab") / "configs" / f"{text}.yaml").read_text(), f"recipe {text}"


def load_yaml(path: str | Path) -> dict[str, Any]:
    """Read a YAML recipe (a file, or a shipped recipe's name: see :func:`recipe_text`); errors name it."""
    text, where = recipe_text(path)
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{where}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping of keys to values at the top level")
    return data


def save_yaml(cfg: Any, path: str | Path) -> None:
    """Write a resolved config (a TrainConfig or its dict) as YAML, atomically."""
    from fcnlab.runtime.files import atomic_write_text

    data = cfg.to_dict() if hasattr(cfg, "to_dict") else dict(cfg)
    atomic_write_text(path, yaml.safe_dump(data, sort_keys=False))
