"""Checks of command-line numbers shared by the sub-commands (light: no torch, so light commands stay light)."""

from __future__ import annotations

from fcnlab.errors import ConfigError


def at_least(value: int | None, minimum: int, option: str, why: str = "") -> int | None:
    """``value`` of command-line ``option`` when it is None (not given) or >= ``minimum``; else one ConfigError
    line, which the CLI prints with exit 2 as it does for bad data (argparse's own errors add a usage block)."""
    if value is not None and value < minimum:
        raise ConfigError(f"option {option}: must be >= {minimum}{why}, got {value}")
    return value
