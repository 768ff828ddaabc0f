"""``toyrobust eps-analysis`` on MNIST-format files written here (the bundled digits stored as 8-bit IDX files)."""

import csv
import gzip
import struct

import numpy as np
import pytest

import toyrobust as tr
from toyrobust.cli import main


def _write_idx(path, array):
    array = np.asarray(array, dtype=np.uint8)
    with gzip.open(path, "wb") as fh:
        fh.write(bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}i", *array.shape) + array.tobytes())


def test_eps_analysis_runs_on_idx_files(tmp_path, capsys):
    pytest.importorskip("sklearn")
    X, y = tr.datasets.digits(n=500)
    images = np.round(X.numpy() * 255).reshape(-1, 8, 8)
    _write_idx(tmp_path / "train-images-idx3-ubyte.gz", images)
    _write_idx(tmp_path / "train-labels-idx1-ubyte.gz", y.numpy())
    out = tmp_path / "out"
    code = main(["eps-analysis", "--idx", str(tmp_path / "train-images-idx3-ubyte.gz"), "--quick", "--out", str(out),
                 "--max-test", "40", "--max-per-class", "30", "--no-progress"])
    assert code == 0
    written = capsys.readouterr().out.split()
    assert any(p.endswith("eps_analysis_train-images-idx3-ubyte.png") for p in written)
    with open(out / "eps_analysis_train-images-idx3-ubyte-summary.csv") as fh:
        summary = next(csv.DictReader(fh))
    assert int(summary["n_test"]) == 40 and int(summary["images_for_distance_tables"]) == 300
    with open(out / "eps_analysis_train-images-idx3-ubyte-projection.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert {r["attack"] for r in rows} == {"pgd", "apgd", "pgd (projection-aware)"}


@pytest.mark.parametrize("argv, message", [
    (["eps-analysis"], "one of the arguments --idx --digits is required"),
    (["eps-analysis", "--digits", "--max-test", "0"], "--max-test must be an integer >= 1, got 0"),
    (["eps-analysis", "--idx", "nope-images-idx3-ubyte"], "--idx 'nope-images-idx3-ubyte' is not a file"),
    (["eps-analysis", "--digits", "--test-labels", "x"], "--test-labels 'x' is not a file"),
    (["eps-analysis", "--digits", "--device", "tpu"], "--device must be cpu, cuda, cuda:N or auto"),
])
def test_eps_analysis_refuses_bad_input_in_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1
