"""Image datasets: MNIST's test split with NumPy, MNIST and Fashion-MNIST through torchvision.

The verified IDX files are decompressed where torchvision's classes look for them
(``<cache>/<dataset>/MNIST/raw/`` or ``.../FashionMNIST/raw/``) and the classes are built with
``download=False``: the course, not torchvision, decides where data comes from.
"""

from __future__ import annotations

import gzip
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from slm_course.data.cache import fetch
from slm_course.data.registry import DatasetError

VISION_ENV = "SLM_COURSE_VISION"
DEFAULT_VISION = "mnist"
# dataset name -> torchvision class name (which is also the folder it reads)
VISION_CLASSES = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}

# IDX type byte -> big-endian NumPy dtype (http://yann.lecun.com/exdb/mnist/, bottom)
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (optionally gzip-compressed) into an array of its shape.

    Layout: two zero bytes, a type byte, the number of dimensions ``d``, then ``d``
    big-endian int32 sizes, then the values in C order.
    """
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        data = f.read()
    shape, dtype, offset = _idx_header(data, path)
    expected = offset + int(np.prod(shape)) * np.dtype(dtype).itemsize
    if len(data) != expected:
        raise DatasetError(f"{path} is truncated or padded: {len(data):,} bytes, its header "
                           f"promises {expected:,}; run `slm-course data verify`")
    return np.frombuffer(data, dtype=dtype, offset=offset).reshape(shape).astype(
        np.dtype(dtype).newbyteorder("="))


def _idx_header(data: bytes, path: Path) -> tuple[tuple[int, ...], str, int]:
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise DatasetError(f"{path} is not an IDX file (bad magic number {data[:4]!r})")
    ndim = data[3]
    offset = 4 + 4 * ndim
    if len(data) < offset:
        raise DatasetError(f"{path} is not an IDX file (header cut short)")
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    return shape, _IDX_DTYPES[data[2]], offset


def load_mnist_test(cache: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """MNIST's 10,000 test digits: images ``uint8 (N, 28, 28)`` and labels ``int64 (N,)``."""
    folder = fetch("mnist-t10k", cache=cache)
    images = read_idx(folder / "t10k-images-idx3-ubyte")  # (10000, 28, 28) uint8
    labels = read_idx(folder / "t10k-labels-idx1-ubyte").astype(np.int64)  # (10000,)
    if images.shape[0] != labels.shape[0]:
        raise DatasetError(f"{folder}: {images.shape[0]} images but {labels.shape[0]} labels")
    return images, labels


def vision_name(name: str | None = None) -> str:
    """The vision dataset to use: ``name``, else ``$SLM_COURSE_VISION``, else ``"mnist"``."""
    chosen = (name or os.environ.get(VISION_ENV, "") or DEFAULT_VISION).strip().lower()
    if chosen not in VISION_CLASSES:
        raise DatasetError(f"unknown vision dataset {chosen!r} (from the argument or "
                           f"${VISION_ENV}); choose one of {sorted(VISION_CLASSES)}")
    return chosen


def load_vision(name: str | None = None, train: bool = True, transform: Any = None) -> Any:
    """A torchvision ``MNIST`` or ``FashionMNIST`` dataset built from verified files.

    ``name`` None reads ``$SLM_COURSE_VISION`` (default ``"mnist"``; CI uses
    ``"fashion-mnist"`` because MNIST's training images are not available offline).
    Items are ``(PIL image, int label)`` unless a ``transform`` is given, e.g.
    ``torchvision.transforms.ToTensor()``.
    """
    from torchvision import datasets

    chosen = vision_name(name)
    folder = fetch(chosen)
    class_name = VISION_CLASSES[chosen]
    raw = folder / class_name / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for gz in sorted(folder.glob("*-ubyte.gz")):
        _gunzip_once(gz, raw / gz.name.removesuffix(".gz"))
    cls = getattr(datasets, class_name)
    return cls(root=str(folder), train=train, transform=transform, download=False)


def _gunzip_once(source: Path, target: Path) -> None:
    """Decompress ``source`` to ``target`` atomically unless a complete copy is there.

    "Complete" is checked from the IDX header (its sizes fix the file's length), which
    catches a half-written or truncated file without hashing 47 MB on every call.
    """
    if target.is_file() and _idx_complete(target) and \
            target.stat().st_mtime_ns >= source.stat().st_mtime_ns:
        return
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out, gzip.open(source, "rb") as src:
            shutil.copyfileobj(src, out, 1 << 20)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(name, 0o644)
        os.replace(name, target)
    finally:
        Path(name).unlink(missing_ok=True)


def _idx_complete(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(4 + 4 * 4)
    try:
        shape, dtype, offset = _idx_header(head, path)
    except DatasetError:
        return False
    return path.stat().st_size == offset + int(np.prod(shape)) * np.dtype(dtype).itemsize
