"""Issue 22, items 8-13 (a researcher's first hour, second pass): the defense table flags every attacked risk and
fits 120 columns, closed forms print collected, the docs' examples run, the figures keep their data, and the main
job reports its per-stage times."""

import json
import math
import os
import re

import numpy as np
import pytest
import sympy
import torch

import toyrobust as tr
from toyrobust.defenses import (
    DEFENSES,
    IMPOSSIBLE,
    SETTINGS,
    AttackSpec,
    Defense,
    DefenseRow,
    Setting,
    evaluate_defenses,
    format_table,
    register_defense,
    register_setting,
    smoothing_row,
    to_json,
)
from toyrobust.defenses import evaluate as ev
from toyrobust.montecarlo import clopper_pearson
from toyrobust.rng import make_generator

# ------------------------------------------------------------------------------------------------ item 8: defend


def _no_errors(defended, x, y, threat, config):
    return torch.zeros(x.shape[0], dtype=torch.bool)


def _clean_errors(defended, x, y, threat, config):
    return defended.classifier().predict(x) != y


def test_an_attacked_extra_below_the_floor_is_flagged_with_its_interval():
    """An extra attacked risk (like k-WTA's black-box transfer, 0.176 < 0.207) gets its Clopper-Pearson interval
    and the IMPOSSIBLE verdict of the naive and adaptive columns, in the table and in the JSON."""
    dist, threat = tr.GaussianMixture([1.0, 1.0]), tr.L2(0.5)

    def transfer_like(defended, d, t, x, y, config):  # an attack that never succeeds: its risk is the clean one
        return ev._risk_columns("transfer (black-box)", defended.classifier().predict(x) != y, config)

    register_setting(Setting("fh-2d", lambda quick: (dist, threat)))
    register_defense(Defense("fh-linear", lambda d, t, c: tr.LinearModel.from_weights([1.0, 1.0], 0.0),
                             naive=AttackSpec("clean only", _clean_errors),
                             adaptive=AttackSpec("clean only too", _clean_errors), extras=transfer_like))
    try:
        (row,) = evaluate_defenses(defenses=["fh-linear"], settings=["fh-2d"], config=ev.EvalConfig(n=2000, seed=0),
                                   attacks=["pgd"])
    finally:
        DEFENSES.pop("fh-linear")
        SETTINGS.pop("fh-2d")
    k = round(row.extras["transfer (black-box) risk"] * 2000)
    lo, hi = clopper_pearson(k, 2000, 0.95)
    assert (row.extras["transfer (black-box) low"], row.extras["transfer (black-box) high"]) == (float(lo), float(hi))
    assert hi < row.floor  # the clean risk (~0.079) is far below the optimal adversarial risk (~0.19)
    assert row.extra_verdicts == {"transfer (black-box)": IMPOSSIBLE, "pgd": "ok"}
    assert f"transfer (black-box): {IMPOSSIBLE}" in row.verdicts
    text = format_table([row])
    line = next(ln for ln in text.splitlines() if "transfer (black-box)" in ln and "[" in ln)
    assert f"{row.extras['transfer (black-box) risk']:.3f} [{lo:.3f}, {hi:.3f}]" in line and IMPOSSIBLE in line
    pgd_line = next(ln for ln in text.splitlines() if ln.split()[:2] == ["extra", "pgd"])
    assert pgd_line.rstrip().endswith("ok")  # extra attacks (--attack) keep their risk and verdict in the layout
    data = json.loads(to_json([row]))[0]
    assert data["extra_verdicts"]["transfer (black-box)"] == IMPOSSIBLE
    assert set(data["extras"]) == {f"{n} {e}" for n in ("transfer (black-box)", "pgd") for e in ("risk", "low", "high")}
    assert f"transfer (black-box): {IMPOSSIBLE}" in data["verdicts"]


def test_kwta_transfer_column_is_an_attacked_risk_with_its_interval():
    """The registered k-WTA transfer extra reports risk, low and high (exact, over all n points)."""
    dist = tr.GaussianMixture.robust_nonrobust(20)
    victim = tr.LinearModel.from_weights(dist.mean.to_tensor(), 0.0)
    x, y = dist.sample(300, generator=make_generator(0))
    out = ev._transfer_extras(victim, dist, tr.Linf(0.3), x, y, ev.EvalConfig(quick=True, n=300, seed=0))
    k = round(out["transfer (black-box) risk"] * 300)
    lo, hi = clopper_pearson(k, 300, 0.95)
    assert out == {"transfer (black-box) risk": k / 300, "transfer (black-box) low": float(lo),
                   "transfer (black-box) high": float(hi)}
    assert ev.attacked_extras(out) == ["transfer (black-box)"]


def test_smoothing_certificate_under_linf_says_why_it_is_not_applicable():
    """An L2 certificate says nothing useful about an Linf ball: the column is n/a with a note; the honest
    implication (the certificate at the enclosing L2 radius eps sqrt(k)) is kept under its own name."""
    dist = tr.GaussianMixture.robust_nonrobust(20)
    smooth = tr.RandomizedSmoothing(tr.Linear(dist.mean.to_tensor()), 0.5)
    x, y = dist.sample(40, generator=make_generator(1))
    config = ev.EvalConfig(quick=True, n=40, seed=0)
    out = smoothing_row._certified(smooth, dist, tr.Linf(0.3), x, y, config)
    assert math.isnan(out["certified risk (upper)"])
    assert out["certified risk (enclosing L2 ball)"] == 1.0  # 0.3 sqrt(20) = 1.342 > 1.232, the largest radius
    note = smoothing_row._notes(dist, tr.Linf(0.3), config)["certified risk (upper)"]
    assert note.startswith("n/a (L2 certificate vs Linf ball)") and "1.342" in note and "1.232" in note
    l2 = smoothing_row._certified(smooth, dist, tr.L2(0.5), x, y, config)
    assert set(l2) == {"certified risk (upper)"} and 0 <= l2["certified risk (upper)"] <= 1
    assert smoothing_row._notes(dist, tr.L2(0.5), config) == {}
    assert "L1 ball lies inside" in smoothing_row._notes(dist, tr.L1(0.5), config)["certified risk (upper)"]
    assert DEFENSES["randomized smoothing (sigma 0.5)"].notes is smoothing_row._notes


def _row(**kw):
    base = dict(defense="randomized smoothing (sigma 0.5) with a much longer registered name", setting="robust/non-"
                "robust D=20 and a long setting name too", threat="Linf(eps=0.3)", n=1000, clean_risk=0.028,
                naive_attack="PGD (autograd through k-WTA)", naive_risk=0.17, naive_low=0.147, naive_high=0.195,
                naive_verdict=IMPOSSIBLE, adaptive_attack="detector-aware EOT PGD (+ naive)", adaptive_risk=0.256,
                adaptive_low=0.229, adaptive_high=0.284, adaptive_verdict="ok", optimal=0.207, floor=0.207,
                floor_reason="optimal adversarial risk", level=0.95, seconds=1.0,
                extras={"transfer (black-box) risk": 0.176, "transfer (black-box) low": 0.153,
                        "transfer (black-box) high": 0.201, "apgd risk": 0.25, "apgd high": 0.28,
                        "certified risk (upper)": math.nan, "certified risk (enclosing L2 ball)": 1.0,
                        "detected (naive adv.)": 0.041, "flagged (clean)": 0.049},
                extra_verdicts={"transfer (black-box)": IMPOSSIBLE, "apgd": "ok"},
                notes={"certified risk (upper)": "n/a (L2 certificate vs Linf ball): " + "why " * 60})
    base.update(kw)
    return DefenseRow(**base)


def test_defend_table_fits_120_columns_and_json_stays_complete():
    rows = [_row(), _row(defense="k-WTA MLP", extra_verdicts={}, notes={})]
    text = format_table(rows)
    assert max(len(line) for line in text.splitlines()) <= 120
    block = text.split("\n\n")[0]
    for needle in ("0.176 [0.153, 0.201]", "0.250 [-, 0.280]", "certified risk (upper) n/a",
                   "certified risk (enclosing L2 ball) 1.000", "detected (naive adv.) 0.041",
                   "n/a (L2 certificate vs Linf ball)", f"naive: {IMPOSSIBLE}", f"transfer (black-box): {IMPOSSIBLE}",
                   "naive attack overstates robustness", "floor 0.207"):
        assert needle in " ".join(block.split()), needle  # wrapped lines joined back
    data = json.loads(to_json(rows))
    assert data[0]["extras"]["certified risk (upper)"] is None and data[0]["extras"]["apgd high"] == 0.28
    assert set(data[0]) >= {"naive_verdict", "adaptive_verdict", "extra_verdicts", "notes", "verdicts",
                            "false_security", "floor_reason"}
    assert data[1]["verdicts"] == [f"naive: {IMPOSSIBLE}", "naive attack overstates robustness"]


# ------------------------------------------------------------------------------------------------ item 9: closed forms


def _terms(expr):
    return [str(t) for t in sympy.Add.make_args(expr)]


@pytest.mark.parametrize("dist, threat", [
    (tr.Tsipras(p=0.9, eta=3.0), None), (tr.Tsipras(p=0.9, eta=3.0), tr.Linf(0.1)),
    (tr.Tsipras(p=0.9, eta=3.0, d=5), tr.L2(0.5)), (tr.GaussianMixture.robust_nonrobust(20), tr.Linf(0.1)),
    (tr.GaussianMixture([1.0, 1.0, 2.0, 1.0]), tr.L1(0.5)),
])
@pytest.mark.parametrize("definition", ["ball", "projection", "prediction-change"])
def test_closed_forms_print_each_term_once(dist, threat, definition):
    """Equal terms (the two classes of a symmetric model, an interval and its mirror image) are collected in
    ``expr`` and ``latex()``; the value (computed in log space) is what the printed expression evaluates to."""
    r = tr.risk(dist, dist.bayes_classifier(), threat, definition=definition)
    terms = _terms(r.expr)
    assert len(terms) == len(set(terms)), r.expr
    latex_terms = r.latex().replace("- ", "+ ").split(" + ")
    assert len(latex_terms) == len(set(latex_terms)), r.latex()
    if r.value > 0:
        assert float(r.expr.evalf(30)) == pytest.approx(r.value, rel=1e-9)


def test_tsipras_risk_reads_as_the_two_classes_of_x1():
    r = tr.risk(tr.Tsipras(p=0.9, eta=3.0), tr.Tsipras(p=0.9, eta=3.0).bayes_classifier())
    assert len(_terms(r.expr)) == 2 and sorted(t.split("*")[0] for t in _terms(r.expr)) == ["0.1", "0.9"]
    assert r.latex().count("Q") == 2
    g = tr.GaussianMixture.robust_nonrobust(20)
    assert str(tr.risk(g, g.bayes_classifier()).expr) == "Q(1.99893278365081)"  # was Q(...)/2 + Q(...)/2
    pc = tr.risk(g, g.bayes_classifier(), tr.L2(0.5), definition="prediction-change").expr
    assert len(_terms(pc)) == 2 and all("Q(-" not in t for t in _terms(pc))  # Q(a) - Q(b), its mirror merged
    p, eta = sympy.Symbol("p", positive=True), sympy.Symbol("eta", positive=True)
    sym = tr.risk(tr.Tsipras(p=p, eta=eta), tr.Tsipras(p=p, eta=eta).bayes_classifier()).expr
    assert len(_terms(sym)) == 2 and "2*(1/2 - p/2)" not in str(sym) and "(1 - p)*Q(" in str(sym)


@pytest.mark.parametrize("threat, says", [
    (tr.Linf(0.1), "the whole Linf ball"), (tr.L1(0.1), "the whole L1 ball"),
    (tr.L2(0.1, coords=slice(0, 3)), "L2 on part of the coordinates"),
])
def test_symbolic_spheres_error_names_the_ball_it_got(threat, says):
    dist = tr.ConcentricSpheres(dim=sympy.Symbol("D", positive=True, integer=True))
    with pytest.raises(NotImplementedError, match="numeric parameters only") as err:
        tr.risk(dist, dist.bayes_classifier(), threat)
    assert says in str(err.value)
    if threat.coords is None:
        assert "part of the coordinates" not in str(err.value)


# ------------------------------------------------------------------------------------------------ item 10: docs


def test_testing_module_docstring_example_runs_as_a_doctest():
    """The property-test example in ``toyrobust.testing``'s docstring imports what it uses (``st``) and runs."""
    import doctest

    import toyrobust.testing

    assert "from hypothesis import given, settings, strategies as st" in toyrobust.testing.__doc__
    result = doctest.testmod(toyrobust.testing, verbose=False, report=False)
    assert result.attempted >= 5 and result.failed == 0


def test_the_sweeps_tutorial_writes_parquet():
    """Issue 22 item 10: the sweep example writes Parquet (the README's sections moved to the docs site, whose
    examples tests/test_docs_examples.py runs and compares)."""
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "tutorials" / "sweeps.rst").read_text()
    first = text.split(".. code-block:: python", 2)[1]
    assert "tr.sweep(" in first and "to_parquet(" in first
    assert "toyrobust.sweeps.to_parquet(" in text


@pytest.mark.parametrize("cls", [tr.PointMasses, tr.Tsipras, tr.GaussianMixture, tr.ConcentricSpheres,
                                 tr.BernoulliModel, tr.GaussianMixture.robust_nonrobust])
def test_constructor_signatures_say_what_they_accept(cls):
    """No ``Any`` in the distributions' constructors: a number or a sympy expression (a vector of them for means)."""
    import inspect
    import typing

    from toyrobust.distributions.base import IntOrExpr, NumberOrExpr, VectorLike

    fn = cls.__init__ if isinstance(cls, type) else cls
    sig = inspect.signature(fn)
    hints = typing.get_type_hints(fn)
    for name in sig.parameters:
        if name in ("self", "cls"):
            continue
        assert "Any" not in str(sig.parameters[name].annotation), (cls, name)
        assert hints[name] in (NumberOrExpr, IntOrExpr, VectorLike, VectorLike | None), (cls, name, hints[name])
    assert sympy.Expr in typing.get_args(NumberOrExpr) and float in typing.get_args(NumberOrExpr)


# ------------------------------------------------------------------------------------------------ item 11: figures


def _drawn(name, monkeypatch, tmp_path, rows=None):
    """The matplotlib figure a quick run of ``analyses/<name>.py`` builds (captured at save time, then drawn);
    ``rows`` replaces the script's sweep (its measured rows) where it has one."""
    from toyrobust import reproduce

    module = reproduce.load(name)
    captured = {}
    monkeypatch.setattr(module, "save_figure", lambda fig, stem, data, out=None: captured.update(fig=fig) or [])
    if rows is not None:
        monkeypatch.setattr(module, "sweep_rows", lambda *a, **k: [{"rows": rows}])
    module.main(quick=True, out=tmp_path)
    fig = captured["fig"]
    fig.canvas.draw()
    return fig


def _close(fig):
    import matplotlib.pyplot as plt

    plt.close(fig)


def test_hard_points_panel_d_legend_inside_the_axes_and_off_the_curves(monkeypatch, tmp_path):
    fig = _drawn("hard_points", monkeypatch, tmp_path)
    ax = next(a for a in fig.axes if a.get_title().startswith("(d)"))
    box, frame = ax.get_legend().get_window_extent(), ax.get_window_extent()
    assert frame.x0 <= box.x0 and box.x1 <= frame.x1 and frame.y0 <= box.y0 and box.y1 <= frame.y1
    for handle in ax.get_legend().legend_handles:  # no legend marker sticks out of the axes
        hb = handle.get_window_extent(fig.canvas.get_renderer())
        assert frame.x0 <= hb.x0 and hb.x1 <= frame.x1, handle
    covered = 0
    for line in ax.get_lines():
        if line.get_label().startswith("_") and len(line.get_xdata()) == 2:
            continue  # the Chebyshev nodes' vertical lines run behind the legend's frame
        pts = ax.transData.transform(np.column_stack([line.get_xdata(), line.get_ydata()]))
        inside = (pts[:, 0] > box.x0) & (pts[:, 0] < box.x1) & (pts[:, 1] > box.y0) & (pts[:, 1] < box.y1)
        covered += int(inside.sum())
    assert covered == 0
    _close(fig)


def test_tsipras_tradeoff_scatter_is_whole_and_the_bayes_star_does_not_hide_sign_x2(monkeypatch, tmp_path):
    fig = _drawn("tsipras_tradeoff", monkeypatch, tmp_path)
    ax = fig.axes[0]
    (cloud,) = [c for c in ax.collections if len(c.get_offsets()) > 1000]
    xs = np.asarray(cloud.get_offsets())[:, 0]
    assert xs.max() <= 0.5 + 1e-9 and ax.get_xlim()[1] > xs.max()  # nothing cut off at the right edge
    marks = {ln.get_label(): ln for ln in ax.get_lines()}
    square, star = marks["sign(x$_2$)"], marks["Bayes"]
    assert square.get_markerfacecolor() == "none" and square.get_markersize() > 1.4 * star.get_markersize()
    renderer = fig.canvas.get_renderer()
    assert square.get_window_extent(renderer).contains(*star.get_window_extent(renderer).get_points().mean(axis=0))
    _close(fig)


def test_adversarial_spheres_labels_clear_of_markers_and_corner_marker_whole(monkeypatch, tmp_path):
    from toyrobust import reproduce

    cols = reproduce.load("adversarial_spheres").ROW_COLS
    data = [("quadratic", 20, 0.08, 0.19, 0.02), ("quadratic", 60, 0.29, 0.09, 0.01),
            ("quadratic", 150, 0.3, 0.08, 0.01), ("mlp", 20, 1.0, 0.0, 0.0), ("mlp", 60, 0.9, 0.01, 0.002),
            ("mlp", 150, 0.65, 0.04, 0.01)]
    rows = {c: [] for c in cols}
    for net, step, mu, dist, se in data:
        for c, v in zip(cols, (net, step, mu, mu, mu, "exact", dist, se, 30, 0, 0.1)):
            rows[c].append(v)
    fig = _drawn("adversarial_spheres", monkeypatch, tmp_path, rows=rows)
    ax = fig.axes[0]
    renderer = fig.canvas.get_renderer()
    marker_lines = [ln for ln in ax.get_lines() if ln.get_marker() not in (None, "None", "", " ")]
    points = np.vstack([ax.transData.transform(np.column_stack([ln.get_xdata(), ln.get_ydata()]))
                        for ln in marker_lines])
    for text in ax.texts:  # any label on the axes stays clear of every marker
        tb = text.get_window_extent(renderer).expanded(1.1, 1.3)
        assert not any(tb.contains(x, y) for x, y in points), text.get_text()
    at_corner = [ln for ln in marker_lines if ln.get_marker() in ("o", "s")  # the points (not the bars' caps)
                 and any(x == 1.0 and y == 0.0 for x, y in zip(ln.get_xdata(), ln.get_ydata()))]
    assert at_corner and all(not ln.get_clip_on() for ln in at_corner)  # drawn whole, over the axes' corner
    _close(fig)


# ------------------------------------------------------------------------------------------------ item 12: peer tests


def test_peer_tests_run_without_torchattacks_and_skip_nothing():
    """The README's test command (no torchattacks: the test extra does not install it) still runs every peer
    check, against the reference PGD written in tests/test_attacks_peer.py; nothing is skipped."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    code = ("import sys; sys.modules['torchattacks'] = None; import pytest; raise SystemExit(pytest.main("
            "['-rs', '-p', 'no:cacheprovider', '-v', 'tests/test_attacks_peer.py']))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")])}
    out = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "skipped" not in out.stdout.lower() and "torchattacks]" not in out.stdout
    assert "7 passed" in out.stdout
    for check in ("test_linf_pgd_at_least_as_strong_as_an_independent_peer[reference]",
                  "test_pgd_from_the_clean_point_at_least_as_strong_as_an_independent_peer[linf-reference]",
                  "test_pgd_from_the_clean_point_at_least_as_strong_as_an_independent_peer[l2-reference]"):
        assert f"{check} PASSED" in out.stdout, check
    assert "importorskip" not in (root / "tests" / "test_attacks_peer.py").read_text()


# ------------------------------------------------------------------------------------------------ item 13: times


def test_reproduce_ends_with_the_total_and_each_figures_time(monkeypatch, tmp_path):
    import types

    from toyrobust import reproduce

    names = reproduce.available()[:3]
    monkeypatch.setattr(reproduce, "load", lambda name: types.SimpleNamespace(main=lambda quick, out: []))
    lines = []
    reproduce.run(only=names, quick=True, out=tmp_path, report=lines.append)
    tail = lines[-(len(names) + 1):]
    assert re.fullmatch(r"times: 3 figures in \d+\.\d s \(wall clock\)", tail[0])
    for name, line in zip(names, tail[1:], strict=True):
        assert re.fullmatch(rf"  {name} +\d+\.\d s +\d+%", line), line
    assert reproduce.timing_summary({"a": 1.0, "bb": 3.0}) == ["times: 2 figures in 4.0 s (wall clock)",
                                                               "  a       1.0 s   25%", "  bb      3.0 s   75%"]


def test_crosscheck_table_ends_with_building_running_and_group_times():
    from toyrobust import crosscheck as cc

    def result(group, seconds):
        return cc.CaseResult(group=group, classifier="bayes", distribution="d", threat="none", definition="ball",
                             analytic=0.1, analytic_method="closed form", estimate=0.1, ci_low=0.09, ci_high=0.11,
                             n=100, level=0.999, attack="exact", verdict="agree", detail="", seconds=seconds)

    results = [result("point masses", 1.0), result("tsipras", 2.0), result("point masses", 1.0)]
    lines = cc.timing_lines(results, {"seconds": 6.0, "trained": True})
    assert lines[0] == ("times: 3 cases in 10.0 s (wall clock): building the cases (training the networks) 6.0 s, "
                        "running them 4.0 s; by group (running):")
    assert lines[1:] == ["  point masses      2.0 s   50%", "  tsipras           2.0 s   50%"]
    assert cc.timing_lines(results, {})[0] == "times: 3 cases run in 4.0 s (wall clock); by group:"
    cases = cc.default_cases(quick=True, trained=False)
    assert cases and cc.BUILD_SECONDS["seconds"] > 0 and cc.BUILD_SECONDS["trained"] is False
    table = cc.format_table(results)
    assert table.splitlines()[-3].startswith("times: 3 cases in") and "DISAGREE" not in table


def test_crosscheck_command_prints_its_times_at_the_end(capsys):
    from toyrobust.cli import main

    assert main(["crosscheck", "--quick", "--no-trained", "--only", "point masses", "--n", "200"]) == 0
    out = capsys.readouterr().out.rstrip().splitlines()
    start = next(i for i, line in enumerate(out) if line.startswith("times: "))
    head = r"times: \d+ cases in \d+\.\d s \(wall clock\): building the cases \d+\.\d s, running them"
    assert re.match(head, out[start]), out[start]
    assert all(line.startswith("  ") and line.rstrip().endswith("%") for line in out[start + 1:])


def test_readme_states_the_measured_times_of_the_main_job():
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    main_job = text.index("toyrobust reproduce --quick && toyrobust crosscheck --quick")
    claim = text[main_job:main_job + 2500]
    assert "idle" in claim and "load average" in claim and "times:" in claim
