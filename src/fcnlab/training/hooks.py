"""Per-epoch side outputs of training's main process: validation mask snapshots and TensorBoard."""

from __future__ import annotations

from typing import Any

from fcnlab.training.state import TrainState


def epoch_hooks(state: TrainState) -> list[Any]:
    """Per-epoch side outputs of the main process: mask snapshots (P2) and TensorBoard."""
    hooks: list[Any] = []
    if not state.dist.is_main:
        return hooks
    if state.task.snapshots:
        from fcnlab.training.snapshots import SnapshotHook

        hooks.append(SnapshotHook(state.cfg, state.run_dir, state.val_data, state.device, state.amp))
    if state.cfg.tensorboard:
        from fcnlab.training.tensorboard import TensorBoardHook

        hooks.append(TensorBoardHook(state.run_dir))
    return hooks
