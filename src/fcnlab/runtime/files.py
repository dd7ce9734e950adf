"""Safe output: atomic file writes (a temporary file in the same folder, then ``os.replace``) and output
folders created with one clear error line.

A crash or SIGKILL at any moment leaves either the old file or the new one, never half a file.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from fcnlab.errors import ConfigError


def make_folder(path: Path, option: str = "--out") -> Path:
    """Create ``path`` (and its parents) or raise one clear line naming the option and what is wrong: a file
    of that name already there, or the OS's reason (a parent that is a file, no permission)."""
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{option} {path}: exists and is not a folder; give a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"{option} {path}: cannot create the folder ({e.strerror or e}); choose another "
                          f"{option}") from None
    return path


def _default_mode() -> int:
    """Permissions of a plain new file under the process umask (mkstemp would give 0600)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


_MODE = _default_mode()


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success rename it over ``path``.

    ``suffix`` defaults to the target's suffix so that libraries that pick a format from the file
    name (matplotlib, Pillow) still do the right thing.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=suffix if suffix is not None else path.suffix,
                               dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, _MODE)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_save(path: str | Path, save: Callable[[Path], object]) -> None:
    """Call ``save(tmp_path)`` (e.g. ``fig.savefig``, ``img.save``, ``torch.save``) then rename atomically."""
    with atomic_path(path) as tmp:
        save(tmp)


def atomic_link(src: str | Path, dst: str | Path) -> None:
    """Make ``dst`` an atomic hard link to ``src`` (a copy where links are not supported).

    Used for ``best.pt``: it shares ``last.pt``'s bytes at no cost, and keeps them when ``last.pt`` is
    later replaced by ``os.replace`` (which gives ``last.pt`` a new inode).
    """
    import shutil

    with atomic_path(dst) as tmp:
        tmp.unlink()
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)
