"""Section names of ``fcnlab bench`` (torch-free: the CLI parser is built from them)."""

from __future__ import annotations

from fcnlab.errors import ConfigError

MODEL_SECTIONS = ("vgg16_bn", "fcn32s_vgg16", "fcn8s_resnet34")
SECTIONS = ("matmul", *MODEL_SECTIONS, "pipeline", "evaluator", "tsne")
ALIASES = {"data": "pipeline", "e2e": "pipeline", "loader": "pipeline", "miou": "evaluator", "models": "models"}

#: Training images of the course data per task: epochs in the bench's projections (50 epochs, compile payback).
FULL_TRAIN_SIZE = {"classify": 20000, "segment": 1800}


def parse_only(text: str | None) -> tuple[str, ...]:
    """``"fcn8s_resnet34,e2e"`` -> section names; unknown names raise ConfigError listing the valid ones."""
    if not text:
        return ()
    out: list[str] = []
    for raw in text.split(","):
        name = ALIASES.get(raw.strip(), raw.strip())
        if not name:
            continue
        names = MODEL_SECTIONS if name == "models" else (name,)
        for n in names:
            if n not in SECTIONS:
                valid = ", ".join(SECTIONS + tuple(k for k in ALIASES if k not in SECTIONS))
                raise ConfigError(f"option --only: unknown section {raw.strip()!r}; choose from {valid}")
            if n not in out:
                out.append(n)
    return tuple(out)
