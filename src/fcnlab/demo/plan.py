"""The demo's sizes and settings: :class:`DemoPlan`, the default :data:`FULL` and the smoke test :data:`QUICK`."""

from __future__ import annotations

from dataclasses import dataclass

#: Why the demo's models are not the homework's VGG16-BN ones (printed in its summary).
PAIR_NOTE = (
    "its FCN-32s has 134M parameters (6x the ResNet34 FCN-8s), so each of its checkpoints (weights and "
    "SGD momentum) is about 1.1 GB, rewritten every epoch: gigabytes of disk and minutes of a 1.5-minute demo"
)


@dataclass(frozen=True)
class DemoPlan:
    """Sizes and settings of one demo run (:data:`FULL` by default, :data:`QUICK` for a smoke test)."""

    p1_classes: int = 20
    p1_train_per_class: int = 30
    p1_val_per_class: int = 10
    p1_model: str = "resnet18"
    p1_epochs: int = 5
    p1_batch: int = 32
    p2_train_tiles: int = 16
    p2_val_tiles: int = 6  # seed 0: every class 0-5 occurs in these six tiles
    p2_size: int = 128
    p2_models: tuple[str, ...] = ("fcn32s_resnet34", "fcn8s_resnet34")
    p2_epochs: int = 6
    p2_batch: int = 4
    snapshot_epochs: tuple[int, ...] = (1, 3, 6)
    seed: int = 0


#: The default demo: learns visibly (P1 val accuracy around 0.8 for 20 classes; FCN-8s mIoU around 0.4).
FULL = DemoPlan()
#: A seconds-long smoke test of every step (``--quick``): too small to learn much.
QUICK = DemoPlan(
    p1_classes=4,
    p1_train_per_class=8,
    p1_val_per_class=4,
    p1_epochs=1,
    p1_batch=8,
    p2_train_tiles=2,
    p2_val_tiles=2,
    p2_size=64,
    p2_epochs=2,
    p2_batch=2,
    snapshot_epochs=(1, 2),
)
