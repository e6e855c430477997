"""Atomic file writes: write a temporary sibling, verify and fsync it, then rename over the target.

Every durable write step calls `write_point(stage, target)`; tests install a hook there
(`fault_hook`) to inject ENOSPC or a silent short write at the N-th step without a real full disk.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import threading
from pathlib import Path
from typing import IO, Callable, Iterator

FaultHook = Callable[[str, Path], None]
"""hook(stage, path): stage is 'open', 'written' (path = the temporary file, complete), 'fsync',
'replace' or 'sqlite' (a database commit); raising OSError there simulates a failing write."""

_fault_hook: FaultHook | None = None
TMP_SUFFIX = ".tmp"
"""Temporary siblings are named `.NAME.PID.THREAD.tmp`."""


def set_fault_hook(hook: FaultHook | None) -> FaultHook | None:
    """Install (or remove, with None) the test hook called at every write point; return the old one."""
    global _fault_hook
    previous, _fault_hook = _fault_hook, hook
    return previous


def write_point(stage: str, path: Path) -> None:
    """Mark one durable write step; a no-op unless a test installed a fault hook."""
    if _fault_hook is not None:
        _fault_hook(stage, Path(path))


def tmp_sibling(target: Path) -> Path:
    """The temporary path this process and thread writes `target` through."""
    return target.with_name(f".{target.name}.{os.getpid()}.{threading.get_ident()}{TMP_SUFFIX}")


def check_size(path: Path, expected: int) -> None:
    """Raise OSError unless `path` holds exactly `expected` bytes (a short write went unreported)."""
    size = os.stat(path).st_size
    if size != expected:
        raise OSError(short_write_errno(path), f"short write: {size:,} of {expected:,} bytes", str(path))


def short_write_errno(path: Path) -> int:
    """ENOSPC when the file system holding `path` is (nearly) full, else EIO."""
    try:
        stat = os.statvfs(Path(path).parent)
        free = stat.f_bavail * stat.f_frsize
    except (OSError, AttributeError):
        return errno.EIO
    return errno.ENOSPC if free < (1 << 20) else errno.EIO


@contextlib.contextmanager
def atomic_path(target: Path, verify: Callable[[Path], None] | None = None) -> Iterator[Path]:
    """Yield a temporary path next to `target`; on success verify, fsync and rename it into place.

    `verify(tmp)` runs after the caller wrote the file and may raise (e.g. `check_size`); errors
    from writing, verifying, fsync or rename propagate and leave `target` as it was.
    """
    target = Path(target)
    tmp = tmp_sibling(target)
    try:
        write_point("open", target)
        yield tmp
        write_point("written", tmp)
        if verify is not None:
            verify(tmp)
        write_point("fsync", target)
        with open(tmp, "rb+") as handle:
            os.fsync(handle.fileno())
        write_point("replace", target)
        os.replace(tmp, target)
        fsync_dir(target.parent)
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


@contextlib.contextmanager
def atomic_open(target: Path, mode: str = "w", **kwargs) -> Iterator[IO]:
    """Open a temporary file for writing that atomically replaces `target` on success."""
    with atomic_path(target) as tmp, open(tmp, mode, **kwargs) as handle:
        yield handle
        handle.flush()


def write_json_atomic(target: Path, data: object) -> None:
    """Write `data` as indented JSON to `target` atomically (verified by its length)."""
    text = (json.dumps(data, indent=2, sort_keys=False) + "\n").encode("utf-8")
    with atomic_path(target, verify=lambda tmp: check_size(tmp, len(text))) as tmp:
        with open(tmp, "wb") as handle:
            handle.write(text)


def fsync_dir(directory: Path) -> None:
    """Flush a directory entry so a rename inside it survives a crash.

    Where directories cannot be fsynced (EINVAL, ENOTSUP, opening refused) it is a no-op; any
    other error (EIO) is raised: the rename may not be durable.
    """
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EBADF, errno.EACCES):
            raise
    finally:
        os.close(fd)


def remove_stale_tmp(folder: Path) -> int:
    """Delete temporary siblings left in `folder` by killed writers (call only under the writer lock)."""
    removed = 0
    try:
        names = os.listdir(folder)
    except OSError:
        return 0
    for name in names:
        if name.startswith(".") and name.endswith(TMP_SUFFIX):
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(folder, name))
                removed += 1
    return removed
