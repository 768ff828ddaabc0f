"""Regression tests for "a researcher's first hour" (issue 14): one test per reported item.

Each bad input gets one line on stderr and exit status 2 (before any work), extreme but valid queries answer in
bounded time and memory, and no silent wrong answer is left. References are independent: mpmath and scipy
formulas, exact values, and the definitions themselves.
"""

from __future__ import annotations

import contextlib
import io
import math
import subprocess
import time
import tracemalloc
from pathlib import Path

import mpmath
import numpy as np
import pytest
import sympy
import torch
from scipy import stats

import toyrobust as tr
from toyrobust import cli, reproduce
from toyrobust.cli import main

ROOT = Path(__file__).resolve().parents[1]


def run_cli(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(argv)
    return rc, out.getvalue(), err.getvalue()


def assert_one_line(argv, *needles):
    rc, out, err = run_cli(argv)
    assert rc == 2 and out == "", (rc, out, err)
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("toyrobust: error: "), err
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


@pytest.fixture
def no_crosscheck_work(monkeypatch):
    """Fail if the cross-check starts building or running cases (validation must come first)."""
    from toyrobust import crosscheck

    def boom(*args, **kwargs):
        raise AssertionError("the cross-check started working before its inputs were validated")

    monkeypatch.setattr(crosscheck, "default_cases", boom)
    monkeypatch.setattr(crosscheck, "run", boom)


# ------------------------------------------------------------------------------- crashes, hangs, memory
def test_crosscheck_negative_seed_is_one_line(no_crosscheck_work):
    assert_one_line(["crosscheck", "--seed", "-1"], "--seed", "-1")


def test_crosscheck_missing_cuda_device_is_one_line(no_crosscheck_work):
    # without a GPU "cuda" does not exist; with one, an index past the last device does not
    device = f"cuda:{torch.cuda.device_count()}" if torch.cuda.is_available() else "cuda"
    assert_one_line(["crosscheck", "--device", device], "--device", "CUDA")


def test_crosscheck_unwritable_csv_is_refused_before_any_work(no_crosscheck_work, tmp_path):
    start = time.perf_counter()
    assert_one_line(["crosscheck", "--quick", "--csv", "/nonexistent-dir/x.csv"], "--csv", "/nonexistent-dir")
    assert time.perf_counter() - start < 5
    assert_one_line(["crosscheck", "--csv", str(tmp_path)], "--csv", "folder")


def test_output_probe_leaves_no_file_and_keeps_existing_ones(tmp_path):
    fresh = tmp_path / "fresh.csv"
    cli.check_output_file("--csv", str(fresh))
    assert not fresh.exists()  # the probe removes what it created
    kept = tmp_path / "kept.csv"
    kept.write_text("earlier results\n")
    cli.check_output_file("--csv", str(kept))
    assert kept.read_text() == "earlier results\n"  # opened for appending: never truncated


def test_reproduce_unusable_out_is_refused_before_any_work(monkeypatch, tmp_path):
    monkeypatch.setattr(reproduce, "run", lambda **kw: pytest.fail("reproduce ran"))
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert_one_line(["reproduce", "--quick", "--out", str(blocker)], "--out", "not a folder")
    assert_one_line(["reproduce", "--quick", "--out", str(blocker / "sub")], "--out")


def test_risk_at_a_billion_dimensions_is_exact_in_constant_memory():
    tracemalloc.start()
    rc, out, err = run_cli(["risk", "robust-nonrobust", "--param", "D=1000000000", "--threat", "linf:0.000001",
                            "--json"])
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert rc == 0, err
    assert peak < 50 * 2**20  # a dense D-vector would be 8 GB
    # Bayes rule sign(<mean, x>): Q(||mean||_2 - eps ||mean||_1 / ||mean||_2), mean = (1, a, ..., a)
    mpmath.mp.dps = 40
    D, eps = mpmath.mpf(10) ** 9, mpmath.mpf("1e-6")
    a = mpmath.sqrt(mpmath.log(D) / (D - 1))
    l2, l1 = mpmath.sqrt(1 + mpmath.log(D)), 1 + (D - 1) * a
    ref = mpmath.ncdf(-(l2 - eps * l1 / l2))
    import json

    assert json.loads(out)["value"] == pytest.approx(float(ref), rel=1e-10)


def test_closed_forms_answer_at_dimension_ten_to_the_300():
    D = 10**300
    r = tr.risk(tr.GaussianMixture.robust_nonrobust(D), tr.GaussianMixture.robust_nonrobust(D).bayes_classifier())
    mpmath.mp.dps = 40
    assert float(r) == pytest.approx(float(mpmath.ncdf(-mpmath.sqrt(1 + mpmath.log(mpmath.mpf(D))))), rel=1e-10)


@pytest.mark.parametrize("argv, head", [
    (["describe", "tsipras", "--param", "d=100000"], "x[1] + 6.0*Sum(x[i], (i, 2, 100001))"),
    (["describe", "spheres", "--param", "dim=20000"], "sqrt(Sum(x[i]**2, (i, 1, 20000))) - 1.15"),
    (["describe", "robust-nonrobust", "--param", "dim=1000000000"], "Sum(x[i], (i, 2, 1000000000))"),
])
def test_describe_prints_block_sums_quickly(argv, head):
    start = time.perf_counter()
    rc, out, err = run_cli(argv)
    assert rc == 0, err
    assert time.perf_counter() - start < 10 and len(out) < 3000
    assert head in out


def test_describe_lists_coordinates_in_natural_order():
    rc, out, _ = run_cli(["describe", "tsipras", "--param", "d=9"])  # dim 10: still written term by term
    rule = next(line for line in out.splitlines() if line.startswith("bayes rule"))
    positions = [rule.index(f"*x_{k} ") for k in range(1, 11)]
    assert positions == sorted(positions), rule


# ------------------------------------------------------------------------------- silent wrong answers
@pytest.mark.parametrize("eps", ["nan", "inf", "-inf", "NaN"])
def test_non_finite_eps_is_refused(eps):
    assert_one_line(["risk", "tsipras", "--threat", f"linf:{eps}"], "eps")


def test_grid_refuses_invalid_entries_and_matches_the_exact_value_elsewhere():
    p, eps = sympy.symbols("p eps", positive=True)
    robust = tr.Linear([1.0, 0.0])
    f = tr.risk_function(tr.Tsipras(p=p, eta=3.0), robust, tr.Linf(eps, coords=slice(1, None)), symbols=(p, eps))
    grid = np.array([0.55, 0.7, 0.9, 0.999])
    # sign(x_1) with x_1 unperturbed errs exactly when x_1 = -y: probability 1 - p, whatever eps
    np.testing.assert_allclose(f(grid, 2.0), 1 - grid, rtol=1e-12)
    with pytest.raises(ValueError, match=r"eps.*-0\.5"):
        f(grid, np.array([0.1, -0.5, 0.2, 0.3]))
    with pytest.raises(ValueError, match=r"p .*1\.0"):
        f(np.array([0.9, 1.0]), 0.1)
    with pytest.raises(ValueError, match="p .*nan"):
        f(np.array([0.9, math.nan]), 0.1)


def test_grid_without_free_symbols_is_a_constant_function():
    dist = tr.Tsipras(0.9, 3.0)
    f = tr.risk_function(dist, dist.bayes_classifier(), tr.Linf(0.3))
    # independent value: the margin L x1 + 6 x2 (L = log 9) loses 0.3 (L + 6) over the Linf ball
    L = mpmath.log(9)
    drop = mpmath.mpf("0.3") * (L + 6)
    ref = sum(wt * mpmath.ncdf(-(s * L + 18 - drop) / 6) for wt, s in ((0.9, 1), (0.1, -1)))
    assert f.symbols == () and float(f()) == pytest.approx(float(ref), rel=1e-12)


DISTS = [tr.PointMasses(1.0), tr.Tsipras(0.9, 3.0, 2), tr.GaussianMixture([1.0, 0.5, -2.0]),
         tr.ConcentricSpheres(dim=3), tr.BernoulliModel(d=3, tau=0.2)]


@pytest.mark.parametrize("dist", DISTS, ids=lambda d: type(d).__name__)
def test_nan_points_project_to_nan_and_have_no_bayes_label(dist):
    x = torch.full((2, int(dist.dim)), 0.3, dtype=torch.float64)
    x[1, 0] = math.nan
    proj = dist.project(x)
    assert bool(torch.isnan(proj[1, 0])) and not bool(torch.isnan(proj[0]).any())
    with pytest.raises(ValueError, match=r"x contains NaN \(rows \[1\]\)"):
        dist.bayes_label(x)
    assert dist.bayes_label(x[:1]).shape == (1,)


# ------------------------------------------------------------------------------- misleading errors
@pytest.mark.parametrize("threat", ["linf:0.3", 0.3, 1])
def test_a_threat_that_is_not_a_threat_model_is_a_type_error(threat):
    dist = tr.Tsipras(0.9, 3.0)
    with pytest.raises(TypeError, match=r"threat must be a ThreatModel such as tr\.Linf\(0\.3\)") as info:
        tr.risk(dist, dist.bayes_classifier(), threat)
    if isinstance(threat, str):
        assert "make_threat('linf:0.3')" in str(info.value)
    with pytest.raises(TypeError, match="threat"):
        tr.optimal_risk(dist, threat)
    if not isinstance(threat, str):  # estimate_risk documents spec strings as accepted
        with pytest.raises(TypeError, match="threat"):
            tr.estimate_risk(dist, dist.bayes_classifier(), threat, n=10)


@pytest.mark.parametrize("model", [tr.LinearModel(2), tr.QuadraticNet(2, 3)], ids=["LinearModel", "QuadraticNet"])
def test_a_torch_model_in_risk_points_to_its_twin(model):
    with pytest.raises(NotImplementedError, match=r"model\.twin\(\)"):
        tr.risk(tr.Tsipras(0.9, 3.0), model, tr.Linf(0.3))


def test_a_model_of_the_wrong_input_size_is_named_before_sampling(monkeypatch):
    dist = tr.Tsipras(0.9, 3.0)
    x, y = dist.sample(8, generator=0)
    with pytest.raises(ValueError, match="dimension 5.*dimension 2"):
        tr.pgd(tr.LinearModel(5), x, y, tr.Linf(0.1))
    monkeypatch.setattr(tr.Tsipras, "sample", lambda *a, **k: pytest.fail("sampled before checking"))
    with pytest.raises(ValueError, match="dimension 5.*dimension 2"):
        tr.estimate_risk(dist, tr.LinearModel(5), tr.Linf(0.1), n=10)
    with pytest.raises(ValueError, match="dimension 3.*dimension 2"):
        tr.estimate_risk(dist, torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.ReLU(), torch.nn.Linear(4, 1)),
                         n=10)


# ------------------------------------------------------------------------------- friction
def test_quick_figures_go_to_an_ignored_folder(monkeypatch):
    seen = {}
    monkeypatch.setattr(reproduce, "run", lambda **kw: seen.update(kw))
    assert run_cli(["reproduce", "--quick", "--only", "point_masses"])[0] == 0
    quick = Path(seen["out"])
    assert quick == ROOT / "figures" / "quick" and quick != ROOT / "figures"
    ignored = subprocess.run(["git", "check-ignore", "-q", str(quick / "point_masses.png")], cwd=ROOT)
    assert ignored.returncode == 0  # git ignores it: a quick run never dirties the checkout
    assert reproduce.default_out(False) == ROOT / "figures"


@pytest.mark.parametrize("spec", ["e1", "linear:e1", "linear:1,0*", "linear:1,0*99"])
def test_block_weight_specs(spec):
    rc, out, err = run_cli(["risk", "robust-nonrobust", "--param", "D=100", "--classifier", spec, "--threat",
                            "linf:0.25", "--json"])
    assert rc == 0, err
    import json

    # sign(x_1), x_1 ~ N(y, 1), loses eps of margin: Q(1 - eps)
    assert json.loads(out)["value"] == pytest.approx(stats.norm.sf(0.75), rel=1e-12)


def test_block_weight_specs_reach_huge_dimensions_and_quadratic():
    rc, out, err = run_cli(["risk", "robust-nonrobust", "--param", "D=" + "1" + "0" * 300, "--classifier",
                            "linear:1,0*", "--threat", "linf:0.25", "--json"])
    assert rc == 0, err
    rc, out, err = run_cli(["risk", "spheres", "--param", "dim=500", "--classifier", "quadratic:1*250,1*:1.2"])
    assert rc == 0, err  # the radial rule ||x||^2 >= 1.2 written as a block quadratic
    assert_one_line(["risk", "spheres", "--classifier", "linear:1,0*3"], "4 weights", "dimension 500")
    assert_one_line(["risk", "tsipras", "--classifier", "linear:e3"], "e3")


def test_dim_is_an_alias_of_each_distributions_dimension_parameter():
    def dim_of(*params):
        argv = ["describe", params[0]] + [a for p in params[1:] for a in ("--param", p)]
        rc, out, err = run_cli(argv + ["--json"])
        assert rc == 0, err
        import json

        return json.loads(out)["dimension"]

    assert dim_of("robust-nonrobust", "dim=7") == dim_of("robust-nonrobust", "D=7") == "7"
    assert dim_of("tsipras", "dim=3") == dim_of("tsipras", "d=2") == "3"  # dim = d + 1
    assert dim_of("bernoulli", "dim=4") == "4"
    assert_one_line(["describe", "tsipras", "--param", "dim=3", "--param", "d=2"], "alias")
    assert_one_line(["describe", "tsipras", "--param", "dim=1"], "dim >= 2")
    assert_one_line(["describe", "gaussian-mixture", "--param", "dim=3"], "mean")


def test_version():
    import tomllib

    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0 and out.getvalue().strip() == f"toyrobust {version}"


def test_integer_parameters_are_parsed_exactly():
    rc, out, err = run_cli(["describe", "tsipras", "--param", "d=1e300", "--json"])
    assert rc == 0, err
    import json

    assert json.loads(out)["dimension"] == str(10**300 + 1)  # not the nearest float's integer
    assert_one_line(["describe", "tsipras", "--param", "d=2.5"], "integer")


def test_a_wrapped_torch_model_in_risk_also_points_to_its_twin():
    from toyrobust.classifiers import TorchClassifier

    with pytest.raises(NotImplementedError, match=r"model\.twin\(\)"):
        tr.risk(tr.Tsipras(0.9, 3.0), TorchClassifier(tr.LinearModel(2)), None)


def test_numbers_beyond_the_float_range_are_refused_by_name():
    with pytest.raises(ValueError, match="eta"):
        tr.Tsipras(0.9, 10**400)
    with pytest.raises(ValueError, match="mean"):
        tr.GaussianMixture([10**400, 1.0])
    with pytest.raises(ValueError, match="sigma"):
        tr.GaussianMixture([1.0, 0.5], sigma=1e-300)  # the log-odds weights 2 mean / sigma^2 overflow
    assert tr.Tsipras(0.9, 3.0, 10**300).dim == 10**300 + 1  # huge integer dimensions stay valid
    assert_one_line(["risk", "gaussian-mixture", "--param", "mean=1,0.5", "--param", "sigma=1e-300"], "sigma")
