"""A full disk ends every command the same way: one line naming the device and the file, and nothing
half-written left behind (or, for a resumable run, what was kept and how to go on).

`one_line_when_full` wraps any block that writes; `undo_new_entries` is the undo for a block that
writes several files into a directory that may already hold others; `staged_into` writes a set of
files into a directory all or nothing.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from sfn.errors import SfnError

NOTHING_WRITTEN = "nothing was written"


def device_of(path: Path) -> str:
    """The device and mount point a path lies on, for a message."""
    mount = Path(path)
    while not os.path.ismount(mount) and mount != mount.parent:
        mount = mount.parent
    device = None
    try:
        with open("/proc/mounts") as mounts:
            for line in mounts:
                fields = line.split()
                if len(fields) > 1 and fields[1] == str(mount):
                    device = fields[0]
    except OSError:
        pass
    return f"{device} ({mount})" if device else str(mount)


def is_no_space(error: BaseException) -> bool:
    if isinstance(error, OSError):
        return error.errno in (errno.ENOSPC, errno.EDQUOT)
    # torch.save and numpy's zip writer report a full disk as a RuntimeError wrapping the OSError's text.
    return isinstance(error, RuntimeError) and "No space left on device" in str(error)


def no_space_error(target: Path, kept: str = NOTHING_WRITTEN) -> SfnError:
    return SfnError(f"no space left on {device_of(Path(target).parent)} while writing {target}; {kept}")


@contextmanager
def one_line_when_full(target: Path, kept: str = NOTHING_WRITTEN, *, undo: Callable[[], None] | None = None) -> Iterator[None]:
    """Turn a full disk inside the block into `no_space_error(target, kept)`, after running `undo`."""
    try:
        yield
    except (OSError, RuntimeError) as error:
        if not is_no_space(error):
            raise
        if undo is not None:
            undo()
        raise no_space_error(target, kept) from None


def undo_new_entries(directory: Path) -> Callable[[], None]:
    """A callable that removes what appears in `directory` after this call (the directory itself too,
    if it does not exist yet), leaving what was there before untouched."""
    directory = Path(directory)
    existed = directory.is_dir()
    before = set(directory.iterdir()) if existed else set()

    def undo() -> None:
        if not existed:
            shutil.rmtree(directory, ignore_errors=True)
            return
        for entry in set(directory.iterdir()) - before:
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)

    return undo


@contextmanager
def staged_into(out: Path, name: str) -> Iterator[Path]:
    """Yield a hidden folder inside `out` to write files into; at the end they are renamed into `out`
    together. A failure (a full disk: one line) leaves an earlier run's files there whole, never half
    of them overwritten, and a new `out` is removed again."""
    out = Path(out)
    with one_line_when_full(out, undo=undo_new_entries(out)):
        out.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".partial", dir=out))
        try:
            yield staging
            for entry in sorted(staging.iterdir()):
                os.replace(entry, out / entry.name)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
