"""One writer per run folder: an OS file lock on ``RUN/.lock`` with the holder's PID written inside.

The lock is ``fcntl.flock`` on an open file, so the kernel releases it whenever the holding process ends,
however it ends (normal exit, exception, SIGKILL). A normal release also removes the file; a ``.lock`` file
left behind by a crashed run is stale by construction: the next run finds the file but takes the lock at once.
A second process that finds the lock held is refused with one line naming the holder's PID; the advice is
to wait for it or stop it, never to delete the folder (that would destroy a live run's results).
"""

from __future__ import annotations

import errno
import fcntl
import os
from pathlib import Path
from types import TracebackType

from fcnlab.errors import OutputError

LOCK_NAME = ".lock"


class RunLocked(OutputError):
    """Another live process holds the run folder's lock."""


def _holder(path: Path) -> str:
    """The PID written by the lock's holder (``?`` when it cannot be read yet)."""
    try:
        text = path.read_text().strip()
    except OSError:
        return "?"
    return text.split()[0] if text else "?"


def _locked(run_dir: Path, what: str, pid: str) -> RunLocked:
    return RunLocked(
        f"{run_dir}: in use by another fcnlab process (PID {pid}, see {run_dir / LOCK_NAME}); cannot "
        f"{what} it while that process runs: wait for it to finish or stop it (kill {pid}), or choose "
        f"another --out"
    )


class RunLock:
    """An exclusive lock on a run folder, held from :meth:`acquire` until :meth:`release` or process exit.

    Use as a context manager or call :meth:`acquire` / :meth:`release`. ``what`` words the refusal
    (``train into``, ``resume``).
    """

    def __init__(self, run_dir: str | Path, what: str = "write to"):
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_NAME
        self.what = what
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """True while this object holds the lock."""
        return self._fd is not None

    def acquire(self) -> RunLock:
        """Take the lock or raise :class:`RunLocked` naming the holder's PID (never blocks)."""
        if self._fd is not None:
            return self
        for _ in range(10):  # the file may be removed by a releasing holder between our open and flock
            fd = self._open()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as e:
                os.close(fd)
                if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise OutputError(
                        f"{self.path}: cannot lock the run folder ({e.strerror or e}); use a local "
                        f"disk for the run folder"
                    ) from None
                raise _locked(self.run_dir, self.what, _holder(self.path)) from None
            if self._is_current(fd):
                break
            os.close(fd)  # we locked a file that its holder removed on release: lock the new one
        else:
            raise OutputError(
                f"{self.path}: the run lock keeps changing; another process is starting and "
                f"stopping in this folder, try again"
            )
        # the holder's PID, for the refusal above and for people; written after the lock is ours
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd
        return self

    def _open(self) -> int:
        try:
            return os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as e:
            raise OutputError(
                f"{self.path}: cannot create the run lock ({e.strerror or e}); the run folder must "
                f"be writable, choose another --out"
            ) from None

    def _is_current(self, fd: int) -> bool:
        """True when ``fd`` is still the file at :attr:`path` (not one removed by a releasing holder)."""
        try:
            return os.stat(self.path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            return False

    def release(self) -> None:
        """Release the lock and remove the file (a crash leaves it behind: then it is stale, and free)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            os.unlink(self.path)  # while still locked, so no one else can hold this file at this moment
        except OSError:
            pass
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()


def lock_holder(run_dir: str | Path) -> int | None:
    """PID of the live process holding ``run_dir``'s lock, or None when it is free (or the file is stale)."""
    path = Path(run_dir) / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            pid = _holder(path)
            return int(pid) if pid.isdigit() else -1
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def refuse_if_held(run_dir: str | Path, what: str = "write to") -> None:
    """Raise :class:`RunLocked` (naming the PID) when a live process holds ``run_dir``; takes nothing."""
    pid = lock_holder(run_dir)
    if pid is not None:
        raise _locked(Path(run_dir), what, str(pid) if pid >= 0 else "?")
