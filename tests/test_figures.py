"""Every figure script runs in quick mode and writes non-empty files; figure data agree with the engine."""

import csv

import numpy as np
import pytest
import torch

import toyrobust as tr
from toyrobust import reproduce


def _read(path):
    with open(path) as fh:
        rows = list(csv.DictReader(fh))
    return {k: [r[k] for r in rows] for k in rows[0]}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    out = tmp_path_factory.mktemp("figures")
    return out, reproduce.run(quick=True, out=out)


def test_every_script_writes_nonempty_png_pdf_csv(built):
    out, results = built
    assert set(results) == set(reproduce.available())
    for name, paths in results.items():
        suffixes = {p.suffix for p in paths}
        assert {".png", ".pdf", ".csv"} <= suffixes, name
        for p in paths:
            assert p.parent == out and p.stat().st_size > (1000 if p.suffix != ".csv" else 20), p


def test_tsipras_toy_data_match_the_distribution(built):
    out, _ = built
    dens = _read(out / "tsipras_toy.csv")
    x2 = np.array(dens["x2"], dtype=float)
    for y in ("+1", "-1"):
        total = sum(np.trapezoid(np.array(dens[f"p(x1={s},x2|y={y})"], dtype=float), x2) for s in ("+1", "-1"))
        assert total == pytest.approx(1.0, abs=1e-4)
    summary = dict(zip(*_read(out / "tsipras_toy-summary.csv").values()))
    bayes = tr.Tsipras(0.9, 3.0).bayes_classifier()
    for s in (1, -1):
        pt = torch.tensor([[float(s), float(summary[f"threshold_x1={s:+d}"])]], dtype=torch.float64)
        assert abs(bayes.margin(pt).item()) < 1e-9  # the threshold lies on the Bayes boundary


def test_unknown_figure_is_an_error():
    with pytest.raises(ValueError, match="unknown figure"):
        reproduce.run(only=["nope"])
