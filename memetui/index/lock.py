"""One writer at a time per index: an advisory lock on INDEX/.lock held for a whole build.

The lock is `flock`-based (released by the kernel when the holder dies, even by SIGKILL), so a
killed build never leaves the index locked. The file holds the holder's pid for the message.
Readers never take it: they read the last published snapshot (see store.py).
"""

from __future__ import annotations

import errno
import os
import time
from pathlib import Path

from ..errors import IndexBusyError, IndexWriteError

LOCK_FILE = ".lock"
"""Advisory writer lock inside the index folder."""

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None


class WriterLock:
    """An exclusive, non-blocking writer lock on one index folder."""

    def __init__(self, index: Path):
        self.index = Path(index)
        self.path = self.index / LOCK_FILE
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """True while this object holds the lock."""
        return self._fd is not None

    def acquire(self) -> "WriterLock":
        """Take the lock or raise IndexBusyError naming the holder's pid (IndexWriteError if unwritable)."""
        if self._fd is not None:
            return self
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise IndexWriteError(f"cannot write to {self.index}: {exc.strerror}") from None
        if fcntl is not None:
            for attempt in range(5):  # a reader probing with writer_pid holds a shared lock for microseconds
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as exc:
                    busy = exc.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK)
                    holder = _read_pid(fd)
                    if busy and not holder and attempt < 4:
                        time.sleep(0.05)
                        continue
                    os.close(fd)
                    if busy:
                        who = f" (pid {holder})" if holder else ""
                        raise IndexBusyError(f"another memetui is writing {self.index}{who}") from None
                    raise IndexWriteError(f"cannot lock {self.path}: {exc.strerror}") from None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except OSError:
            pass  # the pid is only for the message; a full disk must not stop the lock
        self._fd = fd
        return self

    def release(self) -> None:
        """Release the lock (the file stays; an empty or stale file is harmless)."""
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)

    def __enter__(self) -> "WriterLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
        return int(text) if text.isdigit() else None
    except (OSError, ValueError):
        return None


def writer_pid(index: Path) -> int | None:
    """The pid of the process writing `index` now, or None when no build holds its lock."""
    path = Path(index) / LOCK_FILE
    if fcntl is None or not path.is_file():
        return None
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return _read_pid(fd) or -1
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
