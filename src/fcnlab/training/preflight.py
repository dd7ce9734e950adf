"""Every option of a training run checked before its run folder is created.

A mistake found after the folder exists would leave a half-made run (``config.yaml`` and no ``last.pt``)
that the corrected command then refuses as an existing run; so what can be checked without loading the
data is checked first: the folders and files named exist, the snapshot tiles are among the validation
tiles, the device is there, TensorBoard can be imported. Snapshot epochs after the last epoch are not an
error (``--epochs`` may be shortened on purpose) but are named in a warning.
"""

from __future__ import annotations

import os
from pathlib import Path

from fcnlab.config import TrainConfig
from fcnlab.errors import ConfigError
from fcnlab.tasks import task_info


def check_options(cfg: TrainConfig) -> list[str]:
    """Raise a ConfigError/DataError for the first option that cannot work; return the warnings to print."""
    from fcnlab.data.images import list_images
    from fcnlab.runtime.device import select_device

    for name in ("data", "val"):
        list_images(getattr(cfg, name))  # one line naming a folder that is missing, not a folder or empty
    for name in ("val_csv", "weights"):
        path = getattr(cfg, name)
        if path is not None and not Path(path).is_file():
            raise ConfigError(f"option --{name.replace('_', '-')} {path}: file does not exist; check the path")
    select_device(cfg.device, int(os.environ.get("LOCAL_RANK", "0") or 0))
    if cfg.tensorboard:
        from fcnlab.training.tensorboard import _summary_writer

        _summary_writer()
    warnings = []
    if task_info(cfg.task).snapshots:
        late = [e for e in cfg.snapshot_epochs if e > cfg.epochs]
        if late:
            warnings.append(
                f"option --snapshot-epochs: epoch(s) {', '.join(map(str, late))} come after the last "
                f"epoch ({cfg.epochs}); no masks are saved for them"
            )
        if cfg.snapshot_images:
            from fcnlab.data.segmentation import pair_files
            from fcnlab.data.subset import named_indices

            assert cfg.val is not None  # list_images above refused a missing --val
            named_indices([tile for tile, _ in pair_files(cfg.val)], cfg.snapshot_images, cfg.val)
    return warnings
