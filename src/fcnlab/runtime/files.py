"""Safe output: atomic file writes (a temporary file in the same folder, then ``os.replace``) and output
folders created with one clear error line.

A crash or SIGKILL at any moment leaves either the old file or the new one, never half a file.
"""

from __future__ import annotations

import contextlib
import errno
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from fcnlab.errors import ConfigError, OutputError


def make_folder(path: Path, option: str = "--out") -> Path:
    """Create ``path`` (and its parents) or raise one clear line naming the option and what is wrong: a file
    of that name already there, or the OS's reason (a parent that is a file, no permission)."""
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{option} {path}: exists and is not a folder; give a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(
            f"{option} {path}: cannot create the folder ({e.strerror or e}); choose another {option}"
        ) from None
    return path


def _default_mode() -> int:
    """Permissions of a plain new file under the process umask (mkstemp would give 0600)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


_MODE = _default_mode()


# What happened and what to do, for the errors a write meets on a full, read-only or foreign disk.
_WRITE_FAULTS = {
    errno.ENOSPC: ("the disk is full", "free disk space or write elsewhere"),
    errno.EDQUOT: ("the disk quota is exceeded", "free space in your quota or write elsewhere"),
    errno.EFBIG: ("the file is too large for this file system", "write elsewhere"),
    errno.EROFS: ("the file system is read-only", "write elsewhere"),
    errno.EACCES: ("permission denied", "fix the folder's permissions or write elsewhere"),
    errno.EPERM: ("operation not permitted", "fix the folder's permissions or write elsewhere"),
    errno.EIO: ("input/output error", "check the disk, then write elsewhere"),
}


def write_fault(e: BaseException) -> tuple[str, str] | None:
    """``(what happened, what to do)`` when ``e`` is a write failure of the disk, else None.

    (torch's zip writer reports a failed ``write()`` as a RuntimeError with no errno; :func:`writing` treats
    that as a full disk only when the folder has no free space left.)
    """
    if isinstance(e, OSError) and e.errno in _WRITE_FAULTS:
        return _WRITE_FAULTS[e.errno]
    return None


def _disk_is_full(folder: Path) -> bool:
    import shutil

    try:
        return shutil.disk_usage(folder).free < 64 * 1024
    except OSError:
        return False


@contextlib.contextmanager
def writing(
    path: str | Path,
    what: str = "write",
    related: tuple[str | Path | None, ...] = (),
    todo: str | None = None,
    only_writes: bool = False,
) -> Iterator[None]:
    """Run a block that writes ``path``; a full, read-only or forbidden disk becomes one :class:`OutputError`
    line ``PATH: cannot <what> (what happened); what to do`` (``todo`` replaces the usual advice).

    Only errors about ``path`` itself (or ``related`` paths such as its temp file, or none named) are
    converted, so a failure to *read* some input inside the block keeps its own message; ``only_writes``
    says the block touches no other file, so every disk fault in it is about ``path``.
    """
    path = Path(path)
    names = {None, str(path), str(path.parent), *(str(p) for p in related if p is not None)}
    try:
        yield
    except OutputError:
        raise
    except OSError as e:
        fault = write_fault(e)
        if fault is None or (e.filename not in names and not only_writes):
            raise
        raise _fault(path, what, fault[0], todo or fault[1]) from None
    except RuntimeError:  # torch.save's C++ zip writer words a failed write as "unexpected pos" or "write failed"
        if not _disk_is_full(path.parent):
            raise
        happened, advice = _WRITE_FAULTS[errno.ENOSPC]
        raise _fault(path, what, happened, todo or advice) from None


def _fault(path: Path, what: str, happened: str, todo: str) -> OutputError:
    """The one-line error of a failed write; ``path`` and ``happened`` stay attributes for callers that
    know better advice (e.g. ``eval`` suggests its ``--out``)."""
    kept = f"; the previous {path.name} is unchanged" if path.is_file() else ""
    error = OutputError(f"{path}: cannot {what} ({happened}); {todo}{kept}")
    error.path, error.happened = path, happened
    return error


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str | None = None, what: str = "write") -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success rename it over ``path``.

    ``suffix`` defaults to the target's suffix so that libraries that pick a format from the file
    name (matplotlib, Pillow) still do the right thing. A full, read-only or forbidden disk (while the temp
    file is made, written or renamed) ends in one :class:`OutputError` naming ``path``; the temp file is
    removed and a previous ``path`` is left as it was.
    """
    path = Path(path)
    tmp_path: Path | None = None
    try:
        with writing(path, what, only_writes=True):  # making the temp file: every fault here is a write fault
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                fault = write_fault(e)
                if fault is None:
                    raise
                raise _fault(path, what, *fault) from None
            fd, tmp = tempfile.mkstemp(
                prefix=f".{path.name}.", suffix=suffix if suffix is not None else path.suffix, dir=path.parent
            )
            os.close(fd)
            tmp_path = Path(tmp)
            os.chmod(tmp_path, _MODE)
        with writing(path, what, related=(tmp_path,)):
            yield tmp_path
            os.replace(tmp_path, path)
    finally:
        if tmp_path is not None and tmp_path.exists():
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


def atomic_save(path: str | Path, save: Callable[[Path], object], what: str = "write") -> None:
    """Call ``save(tmp_path)`` (e.g. ``fig.savefig``, ``img.save``, ``torch.save``) then rename atomically.

    ``what`` words the error line of a failed write (``PATH: cannot <what> (...)``)."""
    with atomic_path(path, what=what) as tmp:
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
