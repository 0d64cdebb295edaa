"""Put a verified copy of a dataset in the cache: from the cache, a mirror folder, or the web.

For every file the sources are tried in order::

    <cache>/<dataset>/<file>            already there and verified: nothing to do
    $SLM_COURSE_MIRROR/<dataset>/<file> a folder with the same layout (copied, then verified)
    the dataset's system folders        e.g. a Linux package's copy (copied, then verified)
    each URL of the registry            unless $SLM_COURSE_OFFLINE=1 (downloaded, then verified)

Every copy is written to a temporary file in the target folder, verified, fsync'ed and only
then renamed onto the final name (``os.replace``), so an interrupted or corrupt transfer
never leaves a file at the final path. A cached file that fails verification is never used
and never deleted: it is moved aside to ``<file>.corrupt`` and fetched again.
"""

from __future__ import annotations

import errno
import fnmatch
import gzip
import hashlib
import http.client
import os
import shutil
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from slm_course.data.registry import Dataset, DatasetError, RemoteFile, get_dataset

DATA_ENV = "SLM_COURSE_DATA"
MIRROR_ENV = "SLM_COURSE_MIRROR"
OFFLINE_ENV = "SLM_COURSE_OFFLINE"
TIMEOUT_S = 30.0
CHUNK = 1 << 16

__all__ = ["DatasetError", "DatasetStatus", "cache_root", "fetch", "file_digest",
           "is_offline", "mirror_dirs", "verify_dataset"]


# --------------------------------------------------------------------------- settings
def cache_root() -> Path:
    """Where datasets live: ``$SLM_COURSE_DATA``, else the checkout's ``datasets/`` folder
    (recognised by its ``README.md``), else ``~/.cache/slm-course``."""
    env = os.environ.get(DATA_ENV, "").strip()
    if env:
        return Path(env).expanduser()
    checkout = Path(__file__).resolve().parents[2] / "datasets"
    if (checkout / "README.md").is_file():
        return checkout
    return Path.home() / ".cache" / "slm-course"


def mirror_dirs() -> list[Path]:
    """The folders named by ``$SLM_COURSE_MIRROR`` (several separated by ``os.pathsep``)."""
    value = os.environ.get(MIRROR_ENV, "")
    return [Path(p).expanduser() for p in value.split(os.pathsep) if p.strip()]


def is_offline() -> bool:
    """True when ``$SLM_COURSE_OFFLINE`` forbids the network (1, true, yes or on)."""
    return os.environ.get(OFFLINE_ENV, "").strip().lower() in {"1", "true", "yes", "on"}


def _as_dataset(dataset: str | Dataset) -> Dataset:
    return get_dataset(dataset) if isinstance(dataset, str) else dataset


# --------------------------------------------------------------------------- verification
def file_digest(path: Path, algorithm: str = "sha256") -> str:
    """The hex digest of the file at ``path`` (read in chunks, so memory stays small)."""
    digest = hashlib.new(algorithm, usedforsecurity=False)
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _file_problem(path: Path, spec: RemoteFile, shown: Path | None = None) -> str | None:
    """What is wrong with the stored file at ``path`` (None if it matches ``spec``).

    ``shown`` is the name used in the message (the final path when checking a temp file).
    """
    shown = shown or path
    if spec.size is not None and (size := path.stat().st_size) != spec.size:
        return f"{shown} has {size:,} bytes, expected {spec.size:,}"
    checksum = spec.checksum()
    if checksum is not None:
        algorithm, expected = checksum
        actual = file_digest(path, algorithm)
        if actual != expected:
            return (f"{shown} is corrupt: its {algorithm} does not match the registry\n"
                    f"    expected {algorithm}: {expected}\n"
                    f"    actual   {algorithm}: {actual}")
    return None


# Files verified in this process, keyed by path -> (size, mtime_ns): a loader called in
# every notebook cell re-hashes a file only when it changed on disk.
_verified: dict[Path, tuple[int, int]] = {}


def _stamp(path: Path) -> tuple[int, int]:
    st = path.stat()
    return st.st_size, st.st_mtime_ns


def _cached_file_ok(path: Path, spec: RemoteFile) -> str | None:
    if _verified.get(path) == _stamp(path):
        return None
    problem = _file_problem(path, spec)
    if problem is None:
        _verified[path] = _stamp(path)
    return problem


@dataclass
class DatasetStatus:
    """The state of one dataset in the cache, as `slm-course data verify` reports it."""

    name: str
    folder: Path
    present: bool
    verified: bool
    problems: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def verify_dataset(dataset: str | Dataset, cache: Path | None = None) -> DatasetStatus:
    """Check a dataset in the cache without changing anything."""
    ds = _as_dataset(dataset)
    folder = (cache or cache_root()) / ds.name
    problems: list[str] = []
    notes: list[str] = []
    if ds.files:
        missing = [f.name for f in ds.files if not (folder / f.name).is_file()]
        if len(missing) == len(ds.files):
            return DatasetStatus(ds.name, folder, False, False, [f"{folder} is missing"])
        problems += [f"{folder / name} is missing" for name in missing]
        for spec in ds.files:
            if (folder / spec.name).is_file():
                problem = _cached_file_ok(folder / spec.name, spec)
                if problem:
                    problems.append(problem)
    elif not folder.is_dir() or not any(folder.glob(ds.pattern)):
        return DatasetStatus(ds.name, folder, False, False, [f"{folder} is missing"])
    if ds.check_structure is not None and not problems:
        try:
            ds.check_structure(folder)
        except DatasetError as err:
            problems.append(str(err))
    if ds.reference_sha256 and not problems:
        same = [n for n, h in ds.reference_sha256.items()
                if (folder / n).is_file() and file_digest(folder / n) == h]
        notes.append(f"{len(same)} of {len(ds.reference_sha256)} files are byte-identical "
                     f"to the course's reference copy (the structure is what is verified; "
                     f"these hashes are for information)")
    return DatasetStatus(ds.name, folder, True, not problems, problems, notes)


# --------------------------------------------------------------------------- fetching
class _SourceFailed(Exception):
    """One source (a mirror folder or a URL) could not provide a good copy; try the next."""


def fetch(dataset: str | Dataset, *, cache: Path | None = None, quiet: bool = False) -> Path:
    """Make sure a verified copy of ``dataset`` is in the cache; return its folder.

    Raises :class:`DatasetError` with what each source answered if no good copy is found.
    """
    ds = _as_dataset(dataset)
    folder = (cache or cache_root()) / ds.name
    try:
        return _fetch_into(ds, folder, quiet)
    except OSError as err:
        if err.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise
        raise DatasetError(unwritable_message(folder.parent, err)) from None


def unwritable_message(root: Path, err: OSError) -> str:
    """Say that the data folder cannot be written, and what to set instead."""
    return (f"the data folder {root} cannot be written ({err.strerror}: a read-only mount, or "
            f"no permission). Set ${DATA_ENV} to a folder you can write, e.g. "
            f"`export {DATA_ENV}=$HOME/slm-course-data`, and fetch again")


def check_writable(root: Path) -> None:
    """Raise :class:`DatasetError` unless files can be created in ``root`` (made if missing)."""
    try:
        root.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=root):
            pass
    except OSError as err:
        raise DatasetError(unwritable_message(root, err)) from None


def _fetch_into(ds: Dataset, folder: Path, quiet: bool) -> Path:
    say: Callable[[str], None] = (lambda _msg: None) if quiet else _say
    if ds.files:
        folder.mkdir(parents=True, exist_ok=True)
        for spec in ds.files:
            _fetch_file(ds, spec, folder / spec.name, say, progress=not quiet)
        if ds.check_structure is not None:
            ds.check_structure(folder)
    else:
        _fetch_archive(ds, folder, say, progress=not quiet)
    return folder


def _say(message: str) -> None:
    print(f"[slm-course data] {message}", file=sys.stderr, flush=True)


def _fetch_file(ds: Dataset, spec: RemoteFile, target: Path,
                say: Callable[[str], None], progress: bool = False) -> None:
    moved = ""
    if target.is_file():
        problem = _cached_file_ok(target, spec)
        if problem is None:
            return
        aside = _move_aside(target)
        moved = f"(the bad copy was moved to {aside}) "
        say(f"{problem}\n  it is not used: moved to {aside}; fetching a fresh copy")
    tried: list[str] = []
    for source in _local_sources(ds, spec.name):
        if not source.is_file():
            tried.append(f"{source}: not there")
            continue
        try:
            _write_verified(target, spec, lambda out, src=source: _copy(src, out))
        except _SourceFailed as err:
            tried.append(f"{source}: {err}")
            continue
        say(f"copied {source} -> {target} (verified)")
        return
    if is_offline():
        raise DatasetError(_offline_message(ds, f"{ds.name}/{spec.name}", target,
                                            spec.urls, tried, moved))
    for url in spec.urls:
        say(f"downloading {url}")
        try:
            _write_verified(target, spec, lambda out, u=url: _download_into(u, out, spec, progress))
        except _SourceFailed as err:
            tried.append(f"{url}: {err}")
            say(f"  failed: {err}")
            continue
        say(f"  saved {target} (verified)")
        return
    raise DatasetError(
        f"could not fetch {ds.name}/{spec.name}: no source gave a good copy {moved}\n"
        + "\n".join(f"  - {t}" for t in tried)
        + f"\nCheck your internet connection and retry (`slm-course data fetch {ds.name}`), "
          f"or put a verified copy at {target}, or point ${MIRROR_ENV} at a folder holding "
          f"{ds.name}/{spec.name}.")


def _local_sources(ds: Dataset, name: str) -> Iterator[Path]:
    for mirror in mirror_dirs():
        yield mirror / ds.name / name
    for folder in ds.system_dirs:
        if Path(folder).is_dir():
            yield Path(folder) / name


def _offline_message(ds: Dataset, what: str, target: Path, urls: tuple[str, ...],
                     tried: list[str], moved: str = "") -> str:
    mirror = os.environ.get(MIRROR_ENV)
    setting = f"{MIRROR_ENV}={mirror}" if mirror else f"{MIRROR_ENV} is not set"
    looked = "".join(f"\n  - {t}" for t in tried)
    unpacked = (f": the files {ds.archive.members} of the zip, unpacked there without their "
                f"folder" if ds.archive else "")
    return (f"{what} is not in the cache ({target}) {moved}and {OFFLINE_ENV}=1 forbids "
            f"downloading it from {' or '.join(urls)}.\n"
            f"Looked in ({setting}):{looked or ' nowhere'}\n"
            f"Fix: set {MIRROR_ENV} to a folder that holds {ds.name}/ (the layout "
            f"<mirror>/{ds.name}/<file>{unpacked}), or unset {OFFLINE_ENV} to download it.")


@contextmanager
def _temp_beside(final: Path, suffix: str = ".part") -> Iterator[Path]:
    """A fresh temporary path in ``final``'s folder, removed on the way out if still there."""
    fd, name = tempfile.mkstemp(dir=final.parent, prefix=f".{final.name}.", suffix=suffix)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
    finally:
        tmp.unlink(missing_ok=True)


def _write_verified(target: Path, spec: RemoteFile,
                    write: Callable[[BinaryIO], None]) -> None:
    """Write with ``write(out)`` into a temp file, verify it, then rename it onto ``target``."""
    with _temp_beside(target) as tmp:
        with open(tmp, "wb") as out:
            write(out)
            out.flush()
            os.fsync(out.fileno())
        problem = _file_problem(tmp, spec, shown=target)
        if problem:
            raise _SourceFailed(problem.replace(f"{target} is corrupt: ", "", 1))
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a dataset is readable by all
        os.replace(tmp, target)
    _fsync_dir(target.parent)
    _verified[target] = _stamp(target)


def _fsync_dir(folder: Path) -> None:
    try:  # makes the rename itself durable; not possible on every OS (e.g. Windows)
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        with suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


def _copy(source: Path, out: BinaryIO) -> None:
    try:
        with open(source, "rb") as src:
            shutil.copyfileobj(src, out, CHUNK)
    except OSError as err:
        raise _SourceFailed(f"cannot read it ({err})") from err


def _download_into(url: str, out: BinaryIO, spec: RemoteFile, progress: bool = False) -> None:
    """Download ``url`` into ``out``; gunzip it first when the spec says so."""
    if not spec.gunzip:
        _download(url, out, progress)
        return
    with tempfile.TemporaryFile() as packed:  # anonymous: never left behind
        _download(url, packed, progress)
        packed.seek(0)
        if spec.download_md5:
            digest = hashlib.md5(usedforsecurity=False)
            while chunk := packed.read(1 << 20):
                digest.update(chunk)
            if digest.hexdigest() != spec.download_md5:
                raise _SourceFailed(f"the downloaded gzip file is corrupt: md5 "
                                    f"{digest.hexdigest()}, expected {spec.download_md5}")
            packed.seek(0)
        try:
            with gzip.GzipFile(fileobj=packed) as unpacked:
                shutil.copyfileobj(unpacked, out, CHUNK)
        except (OSError, EOFError) as err:
            raise _SourceFailed(f"not valid gzip data ({err})") from err


def _download(url: str, out: BinaryIO, progress: bool = False) -> int:
    """Stream ``url`` into ``out``; raise _SourceFailed with a short reason on any failure."""
    from tqdm import tqdm  # plain text: works in a terminal and in Jupyter without widgets

    from slm_course import __version__

    request = urllib.request.Request(url, headers={"User-Agent": f"slm-course/{__version__}"})
    received = 0
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
            length = response.headers.get("Content-Length")
            expected = int(length) if length and length.isdigit() else None
            with tqdm(total=expected, unit="B", unit_scale=True, leave=False, file=sys.stderr,
                      desc=url.rsplit("/", 1)[-1], disable=not progress) as bar:
                while chunk := response.read(CHUNK):
                    out.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
    except urllib.error.HTTPError as err:
        raise _SourceFailed(f"HTTP {err.code} {err.reason}") from err
    except urllib.error.URLError as err:
        raise _SourceFailed(f"could not connect ({err.reason})") from err
    except TimeoutError as err:
        raise _SourceFailed(f"timed out after {TIMEOUT_S:.0f} s") from err
    except (http.client.HTTPException, ConnectionError) as err:
        raise _SourceFailed(f"the connection broke after {received:,} bytes "
                            f"({type(err).__name__}: {err})") from err
    if expected is not None and received != expected:
        raise _SourceFailed(f"the connection closed after {received:,} of {expected:,} bytes "
                            f"(an interrupted download)")
    return received


def _move_aside(path: Path) -> Path:
    """Rename a bad file or folder to ``<name>.corrupt`` (``.corrupt.1``, ... if taken)."""
    aside = path.with_name(path.name + ".corrupt")
    number = 0
    while aside.exists():
        number += 1
        aside = path.with_name(f"{path.name}.corrupt.{number}")
    _verified.pop(path, None)
    with suppress(FileNotFoundError):  # another process may have moved it a moment ago
        os.replace(path, aside)
    return aside


# --------------------------------------------------------------------------- archives
def _fetch_archive(ds: Dataset, folder: Path, say: Callable[[str], None],
                   progress: bool = False) -> None:
    """Fetch a dataset made of an archive's members, verified by ``ds.check_structure``."""
    assert ds.archive is not None and ds.check_structure is not None
    moved = ""
    if folder.is_dir() and any(folder.glob(ds.pattern)):
        try:
            ds.check_structure(folder)
            return
        except DatasetError as err:
            aside = _move_aside(folder)
            moved = f"(the bad copy was moved to {aside}) "
            say(f"{err}\n  it is not used: moved to {aside}; fetching a fresh copy")
    folder.parent.mkdir(parents=True, exist_ok=True)
    tried: list[str] = []
    local = [m / ds.name for m in mirror_dirs()] + [Path(p) for p in ds.system_dirs]
    for source in local:
        files = sorted(source.glob(ds.pattern)) if source.is_dir() else []
        if not files:
            tried.append(f"{source}: not there")
            continue
        try:
            _install_folder(ds, folder, lambda stage, fs=files: _copy_files(fs, stage))
        except _SourceFailed as err:
            tried.append(f"{source}: {err}")
            continue
        say(f"copied {source} -> {folder} (structure verified)")
        return
    if is_offline():
        raise DatasetError(_offline_message(ds, f"{ds.name}/", folder, ds.archive.urls,
                                            tried, moved))
    for url in ds.archive.urls:
        say(f"downloading {url}")
        published = ds.archive.checksum(url)
        try:
            _install_folder(ds, folder, lambda stage, u=url, c=published: _unzip_members(
                u, ds.archive.members, stage, progress, c))
        except _SourceFailed as err:
            tried.append(f"{url}: {err}")
            say(f"  failed: {err}")
            continue
        how = "zip sha256 and structure" if published else "structure"
        say(f"  saved {folder} ({how} verified)")
        return
    raise DatasetError(
        f"could not fetch {ds.name}: no source gave a good copy {moved}\n"
        + "\n".join(f"  - {t}" for t in tried)
        + f"\nCheck your internet connection and retry (`slm-course data fetch {ds.name}`), "
          f"or point ${MIRROR_ENV} at a folder holding {ds.name}/.")


def _install_folder(ds: Dataset, folder: Path, fill: Callable[[Path], None]) -> None:
    """Fill a staging folder beside ``folder``, check its structure, rename it into place."""
    stage = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{ds.name}.", suffix=".part"))
    try:
        os.chmod(stage, 0o755)  # mkdtemp makes it private; a dataset is readable by all
        fill(stage)
        try:
            ds.check_structure(stage)
        except DatasetError as err:
            raise _SourceFailed(str(err).replace(str(stage), "the copy")) from err
        try:
            os.replace(stage, folder)
        except OSError:  # another process installed it meanwhile: keep theirs if it is good
            ds.check_structure(folder)
        _fsync_dir(folder.parent)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _copy_files(files: list[Path], stage: Path) -> None:
    for source in files:
        with open(stage / source.name, "wb") as out:
            _copy(source, out)
            out.flush()
            os.fsync(out.fileno())


def _unzip_members(url: str, pattern: str, stage: Path, progress: bool = False,
                   checksum: tuple[int, str] | None = None) -> None:
    """Download the zip at ``url``, check it against ``checksum`` (size, sha256) when one was
    published for that URL, and write its members matching ``pattern`` into ``stage``."""
    with tempfile.TemporaryFile() as packed:
        received = _download(url, packed, progress)
        if checksum is not None:
            size, sha256 = checksum
            if received != size:
                raise _SourceFailed(f"the zip has {received:,} bytes, expected {size:,} "
                                    f"(the size published for this URL)")
            packed.seek(0)
            digest = hashlib.sha256()
            while chunk := packed.read(1 << 20):
                digest.update(chunk)
            if digest.hexdigest() != sha256:
                raise _SourceFailed(f"the zip is corrupt: its sha256 does not match the one "
                                    f"published for this URL\n    expected sha256: {sha256}"
                                    f"\n    actual   sha256: {digest.hexdigest()}")
        packed.seek(0)
        try:
            with zipfile.ZipFile(packed) as archive:
                members = [m for m in archive.namelist() if fnmatch.fnmatch(m, pattern)]
                if not members:
                    raise _SourceFailed(f"the archive holds no file matching {pattern}")
                for member in members:
                    with archive.open(member) as src, open(stage / Path(member).name,
                                                           "wb") as out:
                        shutil.copyfileobj(src, out, CHUNK)
        except zipfile.BadZipFile as err:
            raise _SourceFailed(f"not a valid zip file ({err})") from err
