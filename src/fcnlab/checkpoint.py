"""Checkpoints: plain dicts that load with ``torch.load(weights_only=True)``, written atomically.

Layout of a checkpoint (all values are tensors, numbers, strings, lists or dicts)::

    format: "fcnlab-checkpoint", version: 1   (a newer version is refused: its keys may mean other things)
    task, model_name, num_classes      what to rebuild
    model                              state dict (unwrapped from DDP / torch.compile)
    ema                                only with config ``ema``: the weights' moving average (``module``: a
                                       state dict like ``model``; ``decay``, ``warmup``, ``updates``); it
                                       is what was evaluated and what inference loads
    optimizer, scheduler, scaler       training state (None in weights-only exports)
    epoch, step_in_epoch, global_step  position: ``epoch`` epochs are complete, plus ``step_in_epoch`` steps
    best_metric, best_epoch            for best.pt bookkeeping
    config                             the resolved TrainConfig as a dict
    rng                                torch / cuda / numpy / python / augmentation generator states
    metrics                            the last validation metrics (dict of floats)
    history                            every finished epoch's metrics.csv and timing.csv row (strings)
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from fcnlab.errors import DataError, torch_load_error
from fcnlab.runtime.files import atomic_save

FORMAT = "fcnlab-checkpoint"
VERSION = 1


def unwrap(model: torch.nn.Module) -> torch.nn.Module:
    """Return the user model inside DDP and/or ``torch.compile`` wrappers."""
    while True:
        if hasattr(model, "module") and isinstance(model.module, torch.nn.Module):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = cast(torch.nn.Module, model._orig_mod)
        else:
            return model


def rng_state(aug_generator: torch.Generator | None = None) -> dict[str, Any]:
    """Capture every RNG fcnlab uses, as weights_only-safe values."""
    np_state = cast(tuple[Any, ...], np.random.get_state())  # the legacy tuple (legacy=True)
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(np_state[1].astype(np.int64)),
            "pos": int(np_state[2]),
            "has_gauss": int(np_state[3]),
            "cached_gaussian": float(np_state[4]),
        },
        "python": list(random.getstate()[1]),
        "python_version": int(random.getstate()[0]),
        "python_gauss": random.getstate()[2],
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    if aug_generator is not None:
        state["augment"] = aug_generator.get_state()
        state["augment_device"] = str(aug_generator.device)
    return state


def set_rng_state(state: dict[str, Any], aug_generator: torch.Generator | None = None) -> None:
    """Restore the RNG states captured by :func:`rng_state`."""
    torch.set_rng_state(state["torch"])
    np_s = state["numpy"]
    np.random.set_state(
        ("MT19937", np_s["keys"].numpy().astype(np.uint32), np_s["pos"], np_s["has_gauss"], np_s["cached_gaussian"])
    )
    random.setstate((state["python_version"], tuple(state["python"]), state["python_gauss"]))
    if state.get("cuda") and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
    if aug_generator is not None and "augment" in state:
        aug_generator.set_state(state["augment"].cpu() if aug_generator.device.type == "cpu" else state["augment"])


def save_checkpoint(path: str | Path, **fields: Any) -> None:
    """Write a checkpoint dict atomically: a temp file in the same folder, flushed to disk, then renamed.

    A crash or SIGKILL at any moment leaves the previous file intact (plus, at worst, a stale
    ``.NAME.*`` temp file that :func:`remove_stale_temp_files` deletes).
    """
    ckpt = {"format": FORMAT, "version": VERSION, **fields}

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            torch.save(ckpt, f)
            f.flush()
            os.fsync(f.fileno())

    atomic_save(path, write, what="write the checkpoint")  # a full disk: one line, the previous file intact


def remove_stale_temp_files(folder: str | Path, names: tuple[str, ...] = ("last.pt", "best.pt")) -> list[Path]:
    """Delete temp files that a killed :func:`save_checkpoint` left behind in ``folder``; return them."""
    removed = []
    for name in names:
        for tmp in Path(folder).glob(f".{name}.*"):
            if tmp.is_file():
                tmp.unlink()
                removed.append(tmp)
    return removed


REQUIRED_KEYS = ("task", "model_name", "num_classes", "model", "config")


def check_version(version: Any, path: str | Path) -> None:
    """Refuse a checkpoint whose format ``version`` is not one this fcnlab reads: a newer format may keep
    the same keys with another meaning, so loading it as if current could give silently wrong weights."""
    from fcnlab import __version__

    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise DataError(
            f"{path}: checkpoint format version {version!r} is not a version number; the file is "
            f"damaged or was edited, use another checkpoint"
        )
    if version > VERSION:
        raise DataError(
            f"{path}: checkpoint format version {version} is newer than this fcnlab "
            f"{__version__} reads (version {VERSION}); upgrade fcnlab (pip install -U fcnlab) "
            f"to load it"
        )


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load an fcnlab checkpoint with ``weights_only=True``; a bad file gives one clear error."""
    path = Path(path)
    if path.is_dir():
        for name in ("best.pt", "last.pt"):
            if (path / name).is_file():
                path = path / name
                break
        else:
            raise DataError(
                f"{path}: run folder holds no best.pt or last.pt; give a run folder of "
                f"'fcnlab classify/segment train' or a checkpoint file"
            )
    if not path.exists():
        from fcnlab.data.images import link_problem

        raise DataError(link_problem(path) or f"{path}: checkpoint file does not exist; check the path")
    if not path.is_file():
        raise DataError(f"{path}: is not a file; give a checkpoint file or a run folder")
    if path.stat().st_size == 0:
        raise DataError(f"{path}: checkpoint file is empty (0 bytes); use another checkpoint (e.g. last.pt)")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except PermissionError:
        raise DataError(f"{path}: cannot read checkpoint (permission denied); fix its permissions") from None
    except Exception as e:  # torch raises many types for truncated/foreign files
        raise DataError(
            f"{path}: not a readable checkpoint ({torch_load_error(e)}); it is damaged or not "
            f"written by fcnlab, use another checkpoint"
        ) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise DataError(
            f"{path}: not an fcnlab checkpoint (missing format tag '{FORMAT}'); give a checkpoint "
            f"written by 'fcnlab ... train'"
        )
    check_version(ckpt.get("version", VERSION), path)
    missing = [k for k in REQUIRED_KEYS if k not in ckpt]
    if missing:
        raise DataError(f"{path}: checkpoint lacks {', '.join(missing)}; it is damaged or from another version")
    return ckpt


def scores_ema(ckpt: dict[str, Any]) -> bool:
    """Whether the checkpoint's scored weights are its EMA (the run kept one), not the raw ``model``."""
    ema = ckpt.get("ema")
    return bool(ckpt.get("config", {}).get("ema") and isinstance(ema, dict) and "module" in ema)


def inference_weights(ckpt: dict[str, Any]) -> dict[str, Any]:
    """The state dict that was evaluated during training: the EMA's when the run kept one, else ``model``."""
    return ckpt["ema"]["module"] if scores_ema(ckpt) else ckpt["model"]


def model_from_checkpoint(ckpt: dict[str, Any], device: str | torch.device = "cpu") -> torch.nn.Module:
    """Rebuild the model of a checkpoint with the weights it was scored with (:func:`inference_weights`;
    no download: weights come from the checkpoint)."""
    from fcnlab.models import build_model

    cfg = ckpt.get("config", {})
    kwargs = {}
    if cfg.get("learn_upsampling") is not None:
        kwargs["learn_upsampling"] = cfg["learn_upsampling"]
    model = build_model(ckpt["model_name"], num_classes=ckpt["num_classes"], **kwargs)
    try:
        model.load_state_dict(inference_weights(ckpt))
    except (RuntimeError, KeyError, TypeError) as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise DataError(
            f"checkpoint weights do not fit model {ckpt['model_name']} with {ckpt['num_classes']} "
            f"classes ({first}); the checkpoint is damaged or was edited"
        ) from None
    return model.to(device).eval()


def detached_copy(obj: Any) -> Any:
    """Deep copy of a checkpoint structure with every tensor copied to the CPU (a snapshot of live state)."""
    if isinstance(obj, torch.Tensor):
        return obj.detach().to("cpu", copy=True)
    if isinstance(obj, dict):
        return {k: detached_copy(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(detached_copy(v) for v in obj)
    return obj


class BackgroundSaver:
    """Writes checkpoints in a background thread while training goes on.

    ``submit`` snapshots the state (tensors copied to the CPU: a fraction of a second even for VGG16-BN's
    1 GB) and returns; the thread then writes it atomically and runs ``then`` (link ``best.pt``, append the
    log row), so the on-disk order stays "checkpoint first, then its log row". At most one write is in
    flight: ``submit`` and ``wait`` first finish the previous one and re-raise its error, if any. The
    training loop calls :meth:`check` after every step, so a failed write (a full disk) stops training at
    once rather than an epoch later.
    """

    def __init__(self) -> None:
        import threading

        self._threading = threading
        self._thread: Any = None
        self._error: BaseException | None = None

    def wait(self) -> None:
        """Block until the pending write (if any) is on disk; re-raise its error."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            err, self._error = self._error, None
            raise err

    def check(self) -> None:
        """Re-raise the error of a finished write without waiting for one in flight (cheap: call it often)."""
        if self._thread is not None and not self._thread.is_alive():
            self.wait()

    def submit(self, path: str | Path, fields: dict[str, Any], then: Any = None) -> None:
        """Snapshot ``fields`` now and save them to ``path`` in the background, then call ``then()``."""
        self.wait()
        snapshot = detached_copy(fields)

        def work() -> None:
            try:
                save_checkpoint(path, **snapshot)
                if then is not None:
                    then()
            except BaseException as e:  # surfaced by the next wait()/submit()
                self._error = e

        self._thread = self._threading.Thread(target=work, name="fcnlab-checkpoint", daemon=False)
        self._thread.start()
