"""The console output of a command, also appended to a log file (``train.log`` in a run folder).

``sys.stdout`` and ``sys.stderr`` are wrapped while the block runs: everything still reaches the console as
before (a terminal keeps its live progress bars), and the log file gets finished lines only: a carriage
return (a bar redrawing itself) restarts the line, so the log holds each bar's last state.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO


class _LineLog:
    """An append-only text file that receives finished lines."""

    def __init__(self, path: Path):
        self.file = open(path, "a", encoding="utf-8")  # noqa: SIM115 - closed by console_log
        self.pending = ""

    def write(self, text: str) -> None:
        self.pending += text
        if "\n" not in self.pending:
            return
        *lines, self.pending = self.pending.split("\n")
        self.file.write("".join(line.rsplit("\r", 1)[-1] + "\n" for line in lines))
        self.file.flush()

    def close(self) -> None:
        last = self.pending.rsplit("\r", 1)[-1]
        if last:
            self.file.write(last + "\n")
        self.file.close()


class _Tee:
    """A text stream that writes to ``stream`` and to the log; everything else (``isatty``, ``fileno``,
    ``encoding``) is ``stream``'s."""

    def __init__(self, stream: TextIO, log: _LineLog):
        self._stream, self._log = stream, log

    def write(self, text: str) -> int:
        n = self._stream.write(text)
        self._log.write(text)
        return n

    def flush(self) -> None:
        self._stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


@contextlib.contextmanager
def console_log(path: str | Path, header: str = "") -> Iterator[None]:
    """Append what the block prints (stdout and stderr) to ``path``, after the line ``header`` when given. A log
    file that cannot be opened is skipped with one warning: the console output is what matters."""
    try:
        log = _LineLog(Path(path))
    except OSError as e:
        print(f"fcnlab: warning: {path}: cannot write the console log ({e.strerror or e})", file=sys.stderr)
        yield
        return
    if header:
        log.write(header + "\n")
    out, err = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = _Tee(out, log), _Tee(err, log)
    try:
        yield
    except BaseException as e:  # the error line itself is printed by the caller, after the block
        log.write(f"stopped: {type(e).__name__}: {e}\n")
        raise
    finally:
        sys.stdout, sys.stderr = out, err
        log.close()
