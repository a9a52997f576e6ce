"""Atomic file writes: a reader sees the old file or the new one, never half of one.

Everything written here gets the mode an ordinary ``open()`` or ``mkdir()`` would give (``0666``
or ``0777`` less the umask): the temporary names that make the writes atomic come from
``tempfile``, which creates them private (``0600``/``0700``), and a model saved by root for a
service account, or copied to a shared folder, must stay readable by other users.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


class OutputPathError(ValueError):
    """An output path cannot be written (a file where a directory is needed, no permission...)."""


def _umask() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return umask


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed onto ``path``.

    For writers that insist on a file name (``model.save``, ``plt.savefig``, ``np.save``). The
    temporary name keeps the suffix so that such writers pick the right format. On an exception
    the temporary file is removed and ``path`` is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


@contextlib.contextmanager
def atomic_directory(path: str | Path) -> Iterator[Path]:
    """Yield an empty staging directory beside ``path``; on success it replaces ``path``.

    A directory cannot be renamed onto a non-empty one, so an existing ``path`` is first moved
    aside and removed after the swap: a crash in between leaves the old or the new directory
    complete under a hidden name, never a half-written one under ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        yield staging
        os.chmod(staging, 0o777 & ~_umask())
        if path.exists():
            retired = Path(tempfile.mkdtemp(prefix=f".{path.name}.old.", dir=path.parent))
            os.replace(path, retired / path.name)
            os.replace(staging, path)
            shutil.rmtree(retired)
        else:
            os.replace(staging, path)
    finally:
        if staging.exists():
            shutil.rmtree(staging)


def atomic_symlink(link: str | Path, target: str | Path) -> Path:
    """Point the symlink ``link`` at ``target``, replacing whatever ``link`` was, atomically.

    Not through :func:`atomic_path`: its ``chmod`` would follow the new link and change the
    mode of the target.
    """
    link = Path(link)
    for attempt in range(100):
        tmp = link.parent / f".{link.name}.{os.getpid()}.{attempt}.tmp"
        try:
            os.symlink(target, tmp)
        except FileExistsError:
            continue
        try:
            os.replace(tmp, link)
        except BaseException:
            tmp.unlink()
            raise
        return link
    raise FileExistsError(f"{link}: no free temporary name beside it")


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
    return Path(path)


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def check_output(path: str | Path, *, directory: bool = False, what: str = "output") -> Path:
    """Refuse, before any work, an output that could not be written at the end.

    ``path`` (a file, or a ``directory`` to create or fill) may exist or not; it must not be
    the other kind of thing, and its nearest existing ancestor must be a directory this process
    can write in. Raises :class:`OutputPathError` naming ``what`` and the path.
    """
    path = Path(path).expanduser()
    if path.exists():
        if directory and not path.is_dir():
            raise OutputPathError(f"{what} {path} is a file; a directory is needed there")
        if not directory and path.is_dir():
            raise OutputPathError(f"{what} {path} is a directory; give a file name")
        if not os.access(path, os.W_OK | (os.X_OK if directory else 0)):
            raise OutputPathError(f"{what} {path}: permission denied (not writable by this user)")
        return path
    ancestor = path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise OutputPathError(f"{what} {path} lies under {ancestor}, which is a file, not a directory")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise OutputPathError(f"{what} {path}: cannot create it in {ancestor} (permission denied)")
    return path
