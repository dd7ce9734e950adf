"""The training options of ``fcnlab classify|segment train``: one ``--key`` per TrainConfig field, in groups.

Each field of :class:`fcnlab.config.TrainConfig` becomes an option of its task's ``train`` (a field of the
other task is refused with one line naming the command it belongs to), listed in its help group
(:data:`fcnlab.config.GROUPS`) with its default for that task and its choices. Values stay strings and are
parsed as YAML by :func:`overrides_from_args` (``--snapshot-epochs 5,25,50``). A boolean
alone means true (``--pretrained``), ``--no-pretrained`` false, and the value form still works
(``--pretrained false``). Building the parser imports no torch: ``fcnlab --help`` stays fast, and the
model names of ``--model`` are looked up only when ``train --help`` is printed.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from collections.abc import Callable
from typing import Any

import yaml

from fcnlab import config, recipes
from fcnlab.errors import ConfigError
from fcnlab.taskinfo import TASKS

GROUP_TITLES = {
    "data": "data",
    "model": "model",
    "optimisation": "optimisation",
    "schedule": "schedule",
    "augmentation": "augmentation",
    "runtime": "runtime",
    "output": "output",
    config.DEFAULT_GROUP: "other options",
}
#: Metavars of fields that name files or folders.
PATHS = {"data": "FOLDER", "val": "FOLDER", "val_csv": "CSV", "weights": "FILE"}
#: Prefix of the namespace attributes that catch the other task's options.
WRONG = "wrong_task_"


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Adds help that is costly to compute (``--model``'s choices need the model registry, hence torch) only
    when the help is printed."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        extra: Callable[[], str] | None = getattr(action, "lazy_help", None)
        return (action.help or "") + extra() if extra is not None else action.help


def _is_bool(tp: Any) -> bool:
    return tp is bool or (
        typing.get_origin(tp) in (typing.Union, types.UnionType) and set(typing.get_args(tp)) == {bool, type(None)}
    )


def _show(value: Any) -> str:
    """A default as the user would type it."""
    if isinstance(value, bool):
        return str(value).lower()
    if value is None:
        return "none"
    if isinstance(value, list):
        return ",".join(str(v) for v in value) if value else "none"
    return str(value)


def _metavar(name: str, tp: Any) -> str:
    if name in config.CHOICES:
        return "{" + ",".join(config.CHOICES[name]) + "}"
    if name in PATHS:
        return PATHS[name]
    if typing.get_origin(tp) is list:
        return "LIST"
    inner = [a for a in typing.get_args(tp) if a is not type(None)] or [tp]
    return {int: "N", float: "X"}.get(inner[0], "NAME")


def _models(task: str) -> str:
    from fcnlab.models import list_models

    return f"; choices: {', '.join(list_models(task))}"


def _recipes(task: str | None) -> str:
    """The shipped recipes of ``task`` (read from their files only when the help is printed)."""
    infos = recipes.recipes_for(task)
    return f"; for this task: {', '.join(f'{i.name} ({i.numbers})' for i in infos)}" if infos else ""


def add_config_arguments(
    parser: argparse.ArgumentParser, task: str | None = None, skip: tuple[str, ...] = ("task",)
) -> None:
    """Add ``--config`` and the options of ``task``'s fields (every field when None), grouped."""
    act = parser.add_argument(
        "--config",
        metavar="RECIPE",
        help="a shipped recipe by name or a YAML file; `fcnlab recipes` lists them with "
        "their numbers (measured or estimated) and time",
    )
    act.lazy_help = lambda task=task: _recipes(task)  # type: ignore[attr-defined]
    shown = config.task_defaults(task or "classify")
    hints = typing.get_type_hints(config.TrainConfig)
    helps = config.field_help()
    groups = {g: parser.add_argument_group(GROUP_TITLES[g]) for g in (*config.GROUPS, config.DEFAULT_GROUP)}
    for f in dataclasses.fields(config.TrainConfig):
        name = f.name
        if name in skip:
            continue
        flag = f"--{name.replace('_', '-')}"
        owner = config.field_task(name)
        if task is not None and owner is not None and owner != task:
            # the other task's option: accepted by argparse, refused by overrides_from_args with one line
            kw: dict[str, Any] = {"nargs": "?", "const": "true"} if _is_bool(hints[name]) else {}
            parser.add_argument(flag, dest=WRONG + name, default=None, help=argparse.SUPPRESS, **kw)
            if _is_bool(hints[name]):
                parser.add_argument(
                    f"--no-{name.replace('_', '-')}",
                    dest=WRONG + name,
                    action="store_const",
                    const="false",
                    help=argparse.SUPPRESS,
                )
            continue
        group = groups[config.field_group(name)]
        text = helps.get(name, "") + ("" if task is not None or owner is None else f" ({owner} only)")
        default = f" (default: {_show(shown[name])})" if task is not None and "default" not in text else ""
        if _is_bool(hints[name]):
            act = group.add_argument(
                flag,
                dest=f"cfg_{name}",
                nargs="?",
                const="true",
                default=None,
                metavar="BOOL",
                help=f"{text}; alone: true, --no-{flag[2:]}: false{default}",
            )
            parser.add_argument(
                f"--no-{flag[2:]}", dest=f"cfg_{name}", action="store_const", const="false", help=argparse.SUPPRESS
            )
        else:
            act = group.add_argument(
                flag, dest=f"cfg_{name}", default=None, metavar=_metavar(name, hints[name]), help=f"{text}{default}"
            )
        if name == "model" and task is not None:
            act.lazy_help = lambda task=task: _models(task)  # type: ignore[attr-defined]


def overrides_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """The config options given on the command line (``--lr 0.1`` ...), each value parsed as YAML.

    An option of the other task (``--snapshot-epochs`` for classify) is refused with one line."""
    values: dict[str, Any] = {}
    for name in config.field_names():
        if getattr(args, f"{WRONG}{name}", None) is not None:
            owner = config.field_task(name)
            used = ", ".join(f"'fcnlab {t} train'" for t in TASKS if t != owner)
            raise ConfigError(
                f"option --{name.replace('_', '-')} is for {owner} training only ('fcnlab {owner} "
                f"train'); {used} does not use it"
            )
        raw = getattr(args, f"cfg_{name}", None)
        if raw is not None:
            try:
                values[name] = yaml.safe_load(raw) if isinstance(raw, str) else raw
            except yaml.YAMLError:
                values[name] = raw
    return values


def resolve(args: argparse.Namespace, task: str) -> config.TrainConfig:
    """Merge task defaults, ``--config`` YAML and command-line overrides into a validated config."""
    values: dict[str, Any] = {}
    source = "command line"
    if getattr(args, "config", None):
        values.update(recipes.load_yaml(args.config))
        source = str(args.config)
        if values.get("task", task) != task:
            raise ConfigError(f"{args.config}: recipe is for task {values['task']!r}, not {task!r}")
    values.update(overrides_from_args(args))
    values["task"] = task
    return config.from_dict(values, source)
