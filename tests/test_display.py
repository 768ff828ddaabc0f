"""Notebook display: the results show as HTML / LaTeX in Jupyter (``_repr_html_``, ``_repr_latex_``) and stay text
elsewhere (their ``repr`` is unchanged)."""

from html.parser import HTMLParser

import pytest
import sympy
import torch

import toyrobust as tr
from toyrobust import crosscheck
from toyrobust.display import crosscheck_html, html_table, number

VOID = {"br", "hr", "img", "meta", "input", "link"}


class _Balance(HTMLParser):
    """Checks that every opened tag is closed in order (what a notebook needs to render a fragment)."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []

    def handle_starttag(self, tag, attrs):
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        assert self.stack and self.stack[-1] == tag, f"</{tag}> closes {self.stack[-1:]}"
        self.stack.pop()


def well_formed(fragment: str) -> str:
    parser = _Balance()
    parser.feed(fragment)
    parser.close()
    assert not parser.stack, f"unclosed tags {parser.stack}"
    return fragment


def test_risk_result_shows_its_closed_form_and_value():
    dist = tr.GaussianMixture.robust_nonrobust(100)
    r = tr.risk(dist, dist.bayes_classifier(), tr.Linf(0.43))
    latex = r._repr_latex_()
    assert latex.startswith("$\\displaystyle R = ") and latex.endswith("$")
    assert "Q" in latex and f"\\approx {float(r):.6g}" in latex
    page = well_formed(r._repr_html_())
    assert f"{float(r):.6g}" in page and "closed form" in page and "linf" in page.lower()
    assert repr(r).startswith("RiskResult(")  # text elsewhere


def test_symbolic_risk_has_no_value():
    p = sympy.Symbol("p", positive=True)
    r = tr.risk(tr.Tsipras(p=p, eta=3.0), tr.Linear([1.0, 0.0]))
    assert "\\approx" not in r._repr_latex_() and "symbolic" in well_formed(r._repr_html_())


def test_html_escapes_its_cells():
    assert "&lt;b&gt;" in html_table([["<b>"]]) and number(None) == "-" and number(0.123456789, 3) == "0.123"


@pytest.mark.parametrize("kind", ["exact", "lower bound", "bracket"])
def test_estimate_shows_its_kind_and_interval(kind):
    if kind == "exact":
        dist = tr.GaussianMixture([1.0, 0.5])
        e = tr.estimate_risk(dist, dist.bayes_classifier(), tr.L2(0.3), n=500, seed=0)
    else:
        dist = tr.Tsipras(0.9, 3.0, d=1)
        net = tr.MLP(2, (8,), seed=0, dtype=torch.float64)
        extra = {"upper": "verify"} if kind == "bracket" else {}
        e = tr.estimate_risk(dist, net, tr.Linf(0.1), n=64, seed=0, attack_options={"steps": 5}, **extra)
    assert e.kind == kind
    page = well_formed(e._repr_html_())
    assert f"<b>{kind}</b>" in page and f"{e.value:.4g}" in page and "Clopper-Pearson" in page
    assert ("verified upper" in page) == (kind == "bracket")
    assert ("&ge;" in page) == (kind == "lower bound")
    latex = e._repr_latex_()
    assert latex.startswith("$") and latex.endswith("$") and f"{e.k}/{e.n}" in latex and kind in latex
    assert repr(e).startswith("RiskEstimate(")


def test_verification_result_counts_its_verdicts():
    dist = tr.Tsipras(0.9, 3.0, d=1)
    net = tr.MLP(2, (8,), seed=0, dtype=torch.float64)
    x, y = dist.sample(10, generator=1, dtype=torch.float64)
    res = tr.verify(net, x, y, tr.Linf(0.1), time_limit=5.0)
    page = well_formed(res._repr_html_())
    counts = res.counts()
    for verdict, count in counts.items():
        assert f"<th style=\"text-align:left\">{verdict}</th><td>{count} of 10</td>" in page
    assert "decided by" in page


def _case(verdict: str, kind: str = "exact") -> crosscheck.CaseResult:
    return crosscheck.CaseResult(group="g", classifier="bayes <x>", distribution="d", threat="linf:0.1",
                                 definition="ball", analytic=0.1, analytic_method="closed form", estimate=0.11,
                                 ci_low=0.09, ci_high=0.13, n=1000, level=0.999, attack="exact_attack",
                                 verdict=verdict, detail="", seconds=0.1, kind=kind)


def test_crosscheck_table_is_a_list_that_prints_and_shows():
    table = crosscheck.CrossCheckTable([_case("agree"), _case("disagree", "lower bound")])
    assert isinstance(table, list) and len(table) == 2
    assert str(table) == crosscheck.format_table(list(table))
    page = well_formed(table._repr_html_())
    assert page == crosscheck_html(table) and "DISAGREE" in page and "bayes &lt;x&gt;" in page
    assert '<tr class="problem">' in page and "&ge; [0.09, 0.13]" in page
    assert table.to_csv() == crosscheck.to_csv(table) and table.to_json() == crosscheck.to_json(table)


def test_crosscheck_run_returns_the_table():
    dist = tr.PointMasses(gap=1.0)
    case = crosscheck.Case(group="g", name="bayes", dist=dist, clf=dist.bayes_classifier(), threat=tr.Linf(0.2))
    table = crosscheck.run([case], n=200)
    assert isinstance(table, crosscheck.CrossCheckTable) and "<table" in table._repr_html_()


def test_ipython_picks_the_rich_forms():
    formatters = pytest.importorskip("IPython.core.formatters")
    dist = tr.PointMasses(gap=1.0)
    r = tr.risk(dist, dist.bayes_classifier(), tr.Linf(0.2))
    data, _ = formatters.DisplayFormatter().format(r)
    assert {"text/plain", "text/html", "text/latex"} <= set(data)
    assert data["text/plain"] == repr(r)
