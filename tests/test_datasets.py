"""tr.datasets: the bundled 8x8 digits, and IDX / npz files written here (no download anywhere)."""

import gzip
import struct

import numpy as np
import pytest
import torch

import toyrobust as tr


def test_digits_are_the_bundled_ones_scaled_to_the_unit_interval():
    pytest.importorskip("sklearn")
    X, y = tr.datasets.digits()
    assert X.shape == (1797, 64) and X.dtype == torch.float32 and y.shape == (1797,) and y.dtype == torch.int64
    assert float(X.min()) == 0.0 and float(X.max()) == 1.0 and set(y.tolist()) == set(range(10))
    # 17 grey levels: multiples of 1/16
    assert torch.equal(X * 16, torch.round(X * 16))
    X64, y64 = tr.datasets.digits(n=10, dtype=torch.float64)
    assert X64.shape == (10, 64) and torch.equal(X64.float(), X[:10]) and torch.equal(y64, y[:10])
    with pytest.raises(ValueError, match="n must be None or an integer >= 1, got 0"):
        tr.datasets.digits(n=0)


def _idx(path, array, code=0x08, gz=False):
    array = np.asarray(array)
    dtype = {0x08: ">u1", 0x0C: ">i4", 0x0D: ">f4"}[code]
    body = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}i", *array.shape)
    body += array.astype(dtype).tobytes()
    opener = gzip.open if gz else open
    with opener(path, "wb") as fh:
        fh.write(body)
    return path


@pytest.mark.parametrize("gz", [False, True])
def test_load_idx_reads_mnist_format_files(tmp_path, gz):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (7, 4, 3))
    labels = rng.integers(0, 10, 7)
    suffix = ".gz" if gz else ""
    img = _idx(tmp_path / f"train-images-idx3-ubyte{suffix}", images, gz=gz)
    _idx(tmp_path / f"train-labels-idx1-ubyte{suffix}", labels, gz=gz)
    X, y = tr.datasets.load_idx(img)
    assert X.shape == (7, 12) and X.dtype == torch.float32
    assert np.allclose(X.numpy(), images.reshape(7, 12) / 255.0) and y.tolist() == labels.tolist()
    X3, _ = tr.datasets.load_idx(img, n=3, scale=False, dtype=torch.float64)
    assert X3.shape == (3, 12) and np.array_equal(X3.numpy(), images[:3].reshape(3, 12))
    assert tr.datasets.read_idx(img).shape == (7, 4, 3)
    dist = tr.EmpiricalDistribution(*tr.datasets.load_idx(img))
    assert dist.n == 7 and dist.dim == 12


def test_load_idx_reads_other_types_and_explicit_label_paths(tmp_path):
    img = _idx(tmp_path / "x.idx", np.arange(6, dtype=np.float32).reshape(3, 2) / 10, code=0x0D)
    lab = _idx(tmp_path / "y.idx", [2, 0, 1], code=0x0C)
    X, y = tr.datasets.load_idx(img, labels=lab)
    assert np.allclose(X.numpy(), np.arange(6).reshape(3, 2) / 10) and y.tolist() == [2, 0, 1]


def test_load_npz(tmp_path):
    np.savez(tmp_path / "a.npz", x=np.ones((4, 2, 2), dtype=np.uint8) * 255, y=np.array([0, 1, 1, 0]))
    X, y = tr.datasets.load_idx(tmp_path / "a.npz")
    assert X.shape == (4, 4) and float(X.max()) == 1.0 and y.tolist() == [0, 1, 1, 0]
    np.savez(tmp_path / "keras.npz", x_train=np.zeros((2, 3)), y_train=[1, 2], x_test=np.zeros((1, 3)), y_test=[0])
    assert tr.datasets.load_idx(tmp_path / "keras.npz", split="test")[1].tolist() == [0]
    np.savez(tmp_path / "bad.npz", images=np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"must hold arrays 'x' and 'y'.*got \['images'\]"):
        tr.datasets.load_idx(tmp_path / "bad.npz")


def test_load_idx_errors_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope"):
        tr.datasets.load_idx(tmp_path / "nope")
    (tmp_path / "junk").write_bytes(b"hello world")
    with pytest.raises(ValueError, match="junk.*is not an IDX file"):
        tr.datasets.load_idx(tmp_path / "junk", labels=tmp_path / "junk")
    img = _idx(tmp_path / "t-images-idx3-ubyte", np.zeros((3, 2, 2)))
    with pytest.raises(FileNotFoundError, match="t-labels-idx1-ubyte"):
        tr.datasets.load_idx(img)
    _idx(tmp_path / "t-labels-idx1-ubyte", [1, 2])
    with pytest.raises(ValueError, match="same count"):
        tr.datasets.load_idx(img)
    raw = (tmp_path / "t-images-idx3-ubyte").read_bytes()
    (tmp_path / "cut-images-idx3-ubyte").write_bytes(raw[:-3])
    with pytest.raises(ValueError, match="cut-images-idx3-ubyte.*truncated"):
        tr.datasets.load_idx(tmp_path / "cut-images-idx3-ubyte")
    with pytest.raises(ValueError, match="cannot tell the labels file"):
        tr.datasets.load_idx(_idx(tmp_path / "pixels.bin", np.zeros((2, 2))))
    with pytest.raises(ValueError, match="split must be 'train' or 'test'"):
        tr.datasets.load_idx(img, split="val")
