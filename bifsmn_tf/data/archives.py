"""The Speech Commands archives: fetching, verification and safe extraction.

:func:`download` makes a dataset of :mod:`bifsmn_tf.data.speech_commands` available under the
data directory, from the official archive, another URL, a local ``.tar.gz`` or a directory that
already holds the extracted dataset. An interrupted download resumes with an HTTP ``Range``
request; a corrupt archive is fetched again.

A dataset directory appears only complete: an archive is extracted into a hidden temporary
directory beside it, checked, given a completion marker and then renamed into place, so a crash
or a corrupt archive never leaves something that later looks like a dataset.
"""

from __future__ import annotations

import gzip
import hashlib
import http.client
import json
import os
import shutil
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
import zlib
from pathlib import Path, PurePosixPath

from bifsmn_tf.data.speech_commands import (
    COMPLETE_MARKER,
    DatasetError,
    archive_name,
    check_layout,
    find_dataset,
    resolve_data_dir,
)
from bifsmn_tf.fileio import atomic_write_text

OFFICIAL_BASE_URL = "https://storage.googleapis.com/download.tensorflow.org/data/"

_CHUNK = 1 << 20


class UnsafeArchiveError(DatasetError):
    """An archive member would be written outside the extraction directory, or is not a file."""


class CorruptArchiveError(DatasetError):
    """An archive fails its size, checksum or gzip/tar integrity check."""


class WrongArchiveError(DatasetError):
    """An intact archive that holds no dataset in the Speech Commands layout."""


class DownloadError(RuntimeError):
    """The archive could not be fetched (HTTP error, or too many interrupted attempts)."""


def archive_url(version: str, *, test_set: bool = False, base_url: str = OFFICIAL_BASE_URL) -> str:
    """The ``.tar.gz`` of ``version`` (see :func:`~bifsmn_tf.data.speech_commands.archive_name`) under
    ``base_url``."""
    return base_url.rstrip("/") + "/" + archive_name(version, test_set=test_set) + ".tar.gz"


def download(
    version: str,
    data_dir: str | Path | None = None,
    *,
    source: str | Path | None = None,
    test_set: bool = False,
    sha256: str | None = None,
    attempts: int = 3,
    timeout: float = 60.0,
) -> Path:
    """Make Speech Commands ``version`` available under ``data_dir``; return its root.

    Args:
        version: ``v1`` or ``v2``.
        data_dir: see :func:`~bifsmn_tf.data.speech_commands.resolve_data_dir`.
        source: ``None`` for the official archive, an ``http(s)://`` URL of a ``.tar.gz``, a local
            ``.tar.gz``, or a directory that already holds the extracted dataset (it is checked and
            linked into ``data_dir``, not copied).
        test_set: the separate official test-set archive instead of the main one.
        sha256: expected SHA-256 of the archive, checked when given (no official checksums are
            published, so there is no default).
        attempts: downloads tried before giving up; an interrupted download resumes with an HTTP
            ``Range`` request, a corrupt archive is deleted and fetched again.
        timeout: seconds without data before a connection counts as interrupted.

    Raises:
        DatasetError: bad local source, unsafe or corrupt local archive, wrong layout (a fetched
            archive that is unsafe or holds no dataset is deleted, so that a rerun fetches
            again), ``data_dir`` not writable or full.
        DownloadError: the archive could not be fetched intact within ``attempts``, or its
            ``.part`` file not written (kept for a resume).
    """
    data_dir = resolve_data_dir(data_dir)
    name = archive_name(version, test_set=test_set)
    target = data_dir / name
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DatasetError(f"{data_dir}: cannot create the data directory ({err.strerror})") from None
    if not os.access(data_dir, os.W_OK | os.X_OK):
        raise DatasetError(f"{data_dir}: permission denied (not writable by this user)")
    if target.exists() or target.is_symlink():
        find_dataset(version, data_dir, test_set=test_set)
        return target
    _remove_stale_extractions(data_dir, name)

    if source is not None and not str(source).startswith(("http://", "https://")):
        local = Path(source).expanduser()
        if local.is_dir():
            return _link_directory(local.resolve(), target, test_set=test_set)
        if not local.is_file():
            raise DatasetError(f"{local}: no such archive or directory")
        _check_sha256(local, sha256)
        return extract_archive(local, target, test_set=test_set, source=str(local))

    url = str(source) if source is not None else archive_url(version, test_set=test_set)
    archive = data_dir / "downloads" / f"{name}.tar.gz"
    last_problem = ""
    for _ in range(attempts):
        try:
            if not archive.is_file():
                fetch(url, archive, timeout=timeout)
            _check_sha256(archive, sha256)
            return extract_archive(archive, target, test_set=test_set, source=url)
        except CorruptArchiveError as err:
            last_problem = str(err)
            archive.unlink(missing_ok=True)
        except _InterruptedDownload as err:
            last_problem = str(err)
        except (UnsafeArchiveError, WrongArchiveError):
            # No use to a rerun, which may name another URL: it must not find this one on disk.
            archive.unlink()
            raise
    raise DownloadError(f"{url}: no intact archive after {attempts} attempts; last: {last_problem}")


class _InterruptedDownload(Exception):
    """The connection ended early; the ``.part`` file keeps what arrived, for a resume."""


def fetch(url: str, dest: Path, *, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``dest``, resuming ``dest.part`` with an HTTP Range request.

    ``dest`` appears only once all the bytes the server announced (Content-Length, or the total of
    a Content-Range) have arrived. A server that ignores Range restarts the download from zero.
    """
    from tqdm import tqdm

    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    offset = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={offset}-"} if offset else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and offset:
            # The part already reaches (or passes) the end: keep it if it is exactly the file.
            total = _content_range_total(err.headers.get("Content-Range", ""))
            if total == offset:
                os.replace(part, dest)
                return dest
            part.unlink()
            return fetch(url, dest, timeout=timeout)
        raise DownloadError(f"{url}: HTTP {err.code} {err.reason}") from None
    except (urllib.error.URLError, OSError) as err:
        raise _InterruptedDownload(f"{url}: {err}") from None

    with response:
        if offset and response.status == 206:
            start = _content_range_start(response.headers.get("Content-Range", ""))
            if start != offset:
                part.unlink()
                raise _InterruptedDownload(f"{url}: server resumed at byte {start}, not {offset}")
            total = _content_range_total(response.headers.get("Content-Range", ""))
            mode = "ab"
        else:
            offset, mode = 0, "wb"
            length = response.headers.get("Content-Length")
            total = int(length) if length is not None else None
        try:
            with (
                open(part, mode) as out,
                tqdm(
                    total=total,
                    initial=offset,
                    unit="B",
                    unit_scale=True,
                    desc=dest.name,
                    disable=None,
                ) as bar,
            ):
                while chunk := _read_chunk(response, url):
                    out.write(chunk)
                    bar.update(len(chunk))
        except OSError as err:
            raise DownloadError(
                f"{part}: cannot write the download ({err.strerror or err}); make room and run "
                "again: it resumes from what arrived"
            ) from None
    received = part.stat().st_size
    if total is not None and received != total:
        if received > total:
            part.unlink()
        raise _InterruptedDownload(f"{url}: got {received} of {total} bytes")
    os.replace(part, dest)
    return dest


def _read_chunk(response: http.client.HTTPResponse, url: str) -> bytes:
    try:
        return response.read(_CHUNK)
    except (http.client.IncompleteRead, OSError) as err:
        raise _InterruptedDownload(f"{url}: connection lost ({err})") from None


def _content_range_start(header: str) -> int | None:
    # "bytes 100-199/200"
    try:
        return int(header.split()[1].split("-")[0])
    except (IndexError, ValueError):
        return None


def _content_range_total(header: str) -> int | None:
    # "bytes 100-199/200" or "bytes */200"
    try:
        return int(header.rsplit("/", 1)[1])
    except (IndexError, ValueError):
        return None


def _check_sha256(archive: Path, expected: str | None) -> None:
    if expected is None:
        return
    digest = hashlib.sha256()
    with open(archive, "rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    if digest.hexdigest() != expected.lower():
        raise CorruptArchiveError(f"{archive}: SHA-256 is {digest.hexdigest()}, expected {expected.lower()}")


def extract_archive(archive: Path, target: Path, *, test_set: bool = False, source: str = "") -> Path:
    """Safely extract a Speech Commands ``.tar.gz`` to ``target``, all or nothing.

    Members go into a hidden temporary directory beside ``target``. Absolute names, ``..``
    components and anything but regular files and directories are refused. The whole gzip stream
    is read to its end, so its CRC and length are checked. Only after the layout is checked does
    the directory get its completion marker and the rename onto ``target``.

    Raises:
        UnsafeArchiveError: a member that could escape the extraction directory.
        CorruptArchiveError: a truncated or damaged archive.
        WrongArchiveError: the archive holds no dataset in the Speech Commands layout (the
            error names ``source``, else ``archive``).
        DatasetError: ``target``'s directory cannot hold the extraction (no space, ...).
    """
    from tqdm import tqdm

    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.extracting-{os.getpid()}-", dir=target.parent))
    try:
        try:
            with (
                tarfile.open(archive, "r:gz") as tar,
                tqdm(
                    total=archive.stat().st_size,
                    unit="B",
                    unit_scale=True,
                    desc=f"extract {archive.name}",
                    disable=None,
                ) as bar,
            ):
                compressed = tar.fileobj.fileobj  # the raw file under the gzip stream
                for member in tar:
                    _check_member(archive, member)
                    tar.extract(member, staging, filter="data")
                    bar.update(compressed.tell() - bar.n)
                while tar.fileobj.read(_CHUNK):  # to the gzip trailer: its CRC and size
                    pass
        except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as err:
            raise CorruptArchiveError(f"{archive}: damaged or truncated archive ({err})") from None
        root = _archive_root(staging)
        try:
            clips = check_layout(root, test_set=test_set, where=source or archive)
        except DatasetError as err:
            raise WrongArchiveError(str(err)) from None
        marker = {"archive": archive.name, "source": source, "clips": clips, "created": time.time()}
        atomic_write_text(root / COMPLETE_MARKER, json.dumps(marker, indent=2) + "\n")
        try:
            os.rename(root, target)
        except OSError:
            if not (target / COMPLETE_MARKER).is_file():
                raise
            # Another process finished the same dataset first; theirs is as good as ours.
    except OSError as err:
        raise DatasetError(f"{target.parent}: cannot extract {archive.name} there ({err.strerror or err})") from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _check_member(archive: Path, member: tarfile.TarInfo) -> None:
    path = PurePosixPath(member.name)
    if path.is_absolute() or member.name.startswith(("/", "\\")) or ":" in path.parts[0]:
        raise UnsafeArchiveError(f"{archive}: refusing member with an absolute path: {member.name!r}")
    if ".." in path.parts:
        raise UnsafeArchiveError(f"{archive}: refusing member with '..' in its path: {member.name!r}")
    if not (member.isfile() or member.isdir()):
        raise UnsafeArchiveError(f"{archive}: refusing member {member.name!r}: only regular files and directories")


def _archive_root(staging: Path) -> Path:
    """The dataset root inside an extraction: the staging dir, or its single wrapper folder."""
    entries = list(staging.iterdir())
    if len(entries) == 1 and entries[0].is_dir() and not any(entries[0].glob("*.wav")):
        return entries[0]
    return staging


def _link_directory(source: Path, target: Path, *, test_set: bool) -> Path:
    check_layout(source, test_set=test_set)
    link = target.with_name(f".{target.name}.link-{os.getpid()}")
    link.unlink(missing_ok=True)
    link.symlink_to(source, target_is_directory=True)
    os.replace(link, target)
    return target


def _remove_stale_extractions(data_dir: Path, name: str) -> None:
    """Remove staging dirs of extractions whose process is gone (a kill skips ``finally``)."""
    for staging in data_dir.glob(f".{name}.extracting-*"):
        pid = staging.name.split("-")[1]
        if pid.isdigit() and not _process_alive(int(pid)):
            shutil.rmtree(staging, ignore_errors=True)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
