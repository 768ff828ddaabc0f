"""Real data without downloads: scikit-learn's bundled 8x8 digits, and MNIST-format files a user already has.

Nothing here fetches anything: :func:`digits` reads the copy of the UCI handwritten digits that ships inside
scikit-learn (1797 images of 8x8 pixels with 17 grey levels), and :func:`load_idx` reads IDX files (the format of
MNIST and Fashion-MNIST, optionally gzipped) or an ``.npz`` archive from a path. Both return ``(X, y)``: images
flattened to rows of floats in [0, 1] and integer labels 0..K-1, ready for
:class:`~toyrobust.distributions.EmpiricalDistribution`.

References:
    E. Alpaydin, C. Kaynak, "Optical recognition of handwritten digits", UCI Machine Learning Repository, 1998
    (the 8x8 digits); Y. LeCun, C. Cortes, C. J. C. Burges, "The MNIST database of handwritten digits" (the IDX
    format).
"""

from __future__ import annotations

import gzip
import os
import re
import struct
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = ["digits", "load_idx", "read_idx", "DIGITS_SHAPE"]

#: the image shape of :func:`digits`
DIGITS_SHAPE = (8, 8)

#: IDX type codes -> numpy dtypes (big-endian)
_IDX_TYPES = {0x08: np.dtype(">u1"), 0x09: np.dtype(">i1"), 0x0B: np.dtype(">i2"), 0x0C: np.dtype(">i4"),
              0x0D: np.dtype(">f4"), 0x0E: np.dtype(">f8")}


def _check_dtype(dtype: Any) -> torch.dtype:
    if dtype not in (torch.float32, torch.float64):
        raise ValueError(f"dtype must be torch.float32 or torch.float64, got {dtype!r}")
    return dtype


def _check_n(n: Any, available: int) -> int:
    if n is None:
        return available
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValueError(f"n must be None or an integer >= 1, got {n!r}")
    return min(n, available)


def digits(*, n: int | None = None, dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """scikit-learn's bundled 8x8 handwritten digits, scaled to [0, 1] (pixel value / 16); no download.

    Args:
        n: keep the first ``n`` images (None: all 1797).
        dtype: float32 or float64.

    Returns:
        ``(X, y)``: X of shape (n, 64) in [0, 1], y of shape (n,) int64 labels 0..9.

    Raises:
        ImportError: scikit-learn is not installed (``pip install scikit-learn``, or the ``data`` extra).
    """
    dtype = _check_dtype(dtype)
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:  # an optional dependency
        raise ImportError("tr.datasets.digits() needs scikit-learn, which ships the 8x8 digits: pip install "
                          "scikit-learn (or pip install 'toyrobust[data]')") from err
    bunch = load_digits()
    k = _check_n(n, len(bunch.target))
    X = torch.from_numpy(np.asarray(bunch.data[:k], dtype=np.float64) / 16.0).to(dtype)
    return X, torch.from_numpy(np.asarray(bunch.target[:k], dtype=np.int64))


def _open(path: Path) -> Any:
    with open(path, "rb") as fh:
        gz = fh.read(2) == b"\x1f\x8b"
    return gzip.open(path, "rb") if gz else open(path, "rb")


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """One IDX file (gzipped or not) as a numpy array of its stored shape and type.

    The format: two zero bytes, a type code (0x08 unsigned byte, 0x09 signed byte, 0x0B int16, 0x0C int32,
    0x0D float32, 0x0E float64), the number of dimensions, each dimension as a big-endian int32, then the data in
    C order, big-endian.

    Raises:
        FileNotFoundError: no such file; ValueError: not an IDX file, or a truncated one (the message names
        ``path``).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path {str(path)!r} is not a file")
    with _open(path) as fh:
        head = fh.read(4)
        if len(head) < 4 or head[:2] != b"\x00\x00" or head[2] not in _IDX_TYPES or head[3] == 0:
            raise ValueError(f"path {str(path)!r} is not an IDX file (it must start with two zero bytes, a type code "
                             f"in {sorted(_IDX_TYPES)} and the number of dimensions), got header {head!r}")
        dtype, ndim = _IDX_TYPES[head[2]], head[3]
        dims = struct.unpack(f">{ndim}i", fh.read(4 * ndim))
        count = int(np.prod(dims))
        data = fh.read(count * dtype.itemsize)
    if len(data) != count * dtype.itemsize:
        raise ValueError(f"path {str(path)!r} is truncated: its header says {dims} values of {dtype.itemsize} "
                         f"bytes, the file holds {len(data)} bytes of data")
    return np.frombuffer(data, dtype=dtype).reshape(dims).astype(dtype.newbyteorder("="))


def _labels_path(images: Path) -> Path:
    """The labels file beside an images file: ``*images*idx3*`` -> ``*labels*idx1*`` (MNIST's names)."""
    name = re.sub("idx3", "idx1", images.name.replace("images", "labels"))
    if name == images.name:
        raise ValueError(f"cannot tell the labels file of {str(images)!r} (expected a name with 'images' and "
                         "'idx3', as MNIST's train-images-idx3-ubyte); pass labels=PATH")
    return images.with_name(name)


def _scale(x: np.ndarray, scale: bool) -> np.ndarray:
    x = x.astype(np.float64)
    if scale and x.size and x.max() > 1.0:
        x = x / 255.0  # 8-bit images to [0, 1]
    return x


def _from_npz(path: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        keys = set(data.files)
        for xk, yk in (("x", "y"), (f"x_{split}", f"y_{split}")):
            if xk in keys and yk in keys:
                return data[xk], data[yk]
    raise ValueError(f"path {str(path)!r} must hold arrays 'x' and 'y' (or 'x_{split}' and 'y_{split}', as Keras' "
                     f"mnist.npz), got {sorted(keys)}")


def load_idx(path: str | os.PathLike, labels: str | os.PathLike | None = None, *, n: int | None = None,
             split: str = "train", scale: bool = True,
             dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    """Images and labels a user already has on disk: MNIST-format IDX files, or an ``.npz`` archive.

    Args:
        path: an IDX images file (``train-images-idx3-ubyte``, gzipped or not), or an ``.npz`` file with arrays
            ``x`` and ``y`` (or ``x_train``/``y_train`` and ``x_test``/``y_test``, chosen by ``split``).
        labels: the IDX labels file (default: the images file's name with ``images``/``idx3`` replaced by
            ``labels``/``idx1``, beside it).
        n: keep the first ``n`` images (None: all).
        split: ``"train"`` or ``"test"`` (``.npz`` archives with both).
        scale: divide pixel values by 255 when they exceed 1 (8-bit images to [0, 1]).
        dtype: float32 or float64.

    Returns:
        ``(X, y)``: X of shape (n, pixels) (each image flattened), y of shape (n,) int64 labels.

    Raises:
        FileNotFoundError: a missing file; ValueError: a file in another format, images and labels of different
        counts, or labels that are not integers >= 0 (each message names the file).
    """
    dtype = _check_dtype(dtype)
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path {str(path)!r} is not a file")
    if path.suffix == ".npz":
        x, y = _from_npz(path, split)
        where = str(path)
    else:
        x = read_idx(path)
        lab = Path(labels) if labels is not None else _labels_path(path)
        y, where = read_idx(lab), f"{str(path)!r} and {str(lab)!r}"
    x, y = np.asarray(x), np.asarray(y).reshape(-1)
    if x.ndim < 2 or x.shape[0] != y.shape[0]:
        raise ValueError(f"{where}: images and labels must have the same count, got images of shape {x.shape} and "
                         f"{y.shape[0]} labels")
    if y.size and (not np.all(np.equal(np.mod(y, 1), 0)) or y.min() < 0):
        raise ValueError(f"{where}: labels must be integers >= 0, got values {np.unique(y)[:5]}")
    k = _check_n(n, x.shape[0])
    X = torch.from_numpy(_scale(x[:k].reshape(k, -1), scale)).to(dtype)
    return X, torch.from_numpy(y[:k].astype(np.int64))
