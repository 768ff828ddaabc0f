"""Notebook display of results: the HTML and LaTeX that Jupyter shows for risks, estimates, verdicts and tables.

The result classes keep their plain-text ``repr`` for terminals and logs; in Jupyter (IPython's rich display) their
``_repr_html_`` / ``_repr_latex_`` methods call the functions here. Everything is standard library and duck-typed
on the results' attributes, so this module sits at the bottom of the layers and imports nothing of the package:

* :func:`risk_latex`, :func:`risk_html` -- a closed-form :class:`~toyrobust.risks.RiskResult` (formula and value);
* :func:`estimate_latex`, :func:`estimate_html` -- a Monte Carlo :class:`~toyrobust.montecarlo.RiskEstimate`
  (what kind of estimate, its interval, the bracket's verified upper end);
* :func:`verification_html` -- a :class:`~toyrobust.verification.VerificationResult` (verdict counts, deciding
  stages, time);
* :func:`crosscheck_html` -- the cross-check table (:class:`~toyrobust.crosscheck.CrossCheckTable`).
"""

from __future__ import annotations

import html
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

__all__ = ["number", "html_table", "risk_latex", "risk_html", "estimate_latex", "estimate_html",
           "verification_html", "crosscheck_html"]

#: the explanation shown beside each estimate kind
KIND_MEANING = {
    "exact": "the attack decides every point: the interval covers the risk",
    "lower bound": "an attack that may miss: the risk may lie above the interval",
    "bracket": "attack below, verifier above: the risk lies between them",
}


def number(value: Any, digits: int = 6) -> str:
    """A number for people: ``digits`` significant digits, ``-`` for None."""
    if value is None:
        return "-"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}".replace(",", "\u2009")  # thin spaces: 20 000
    if math.isnan(value):
        return "nan"
    return f"{value:.{digits}g}"


def html_table(rows: Iterable[Sequence[Any]], *, header: Sequence[str] | None = None, caption: str | None = None,
               escape: bool = True, row_classes: Sequence[str] | None = None) -> str:
    """An HTML ``<table>``: cells escaped unless ``escape=False`` (then they are trusted HTML)."""
    cell = (lambda c: html.escape(str(c))) if escape else str
    out = ['<table class="toyrobust">']
    if caption:
        out.append(f"<caption>{html.escape(caption)}</caption>")
    if header:
        out.append("<thead><tr>" + "".join(f"<th>{html.escape(str(h))}</th>" for h in header) + "</tr></thead>")
    out.append("<tbody>")
    for i, row in enumerate(rows):
        cls = f' class="{html.escape(row_classes[i])}"' if row_classes and row_classes[i] else ""
        out.append(f"<tr{cls}>" + "".join(f"<td>{cell(c)}</td>" for c in row) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _fields(rows: Iterable[tuple[str, Any]]) -> str:
    """A two-column table of (name, value) pairs; the names are shown as row headers."""
    body = "".join(f"<tr><th style=\"text-align:left\">{html.escape(k)}</th><td>{v}</td></tr>" for k, v in rows)
    return f'<table class="toyrobust">{body}</table>'


# ---------------------------------------------------------------------------------------------------------- risks


def risk_latex(res: Any) -> str:
    """``$\\displaystyle R = <closed form> \\approx <value>$`` (the value only when the parameters are numbers)."""
    formula = res.latex()
    if res.value is None:
        return f"$\\displaystyle R = {formula}$"
    value = number(res.value)
    if formula.strip() in (value, str(res.value)):
        return f"$\\displaystyle R = {value}$"
    return f"$\\displaystyle R = {formula} \\approx {value}$"


def risk_html(res: Any) -> str:
    """The risk's value, its closed form (LaTeX, typeset by the notebook), how it was obtained and its registry key."""
    dist, clf, threat, definition = (tuple(res.key) + ("", "", "", ""))[:4]
    rows = [("risk", html.escape(number(res.value)) if res.value is not None else "symbolic"),
            ("closed form", f"${html.escape(res.latex())}$"),
            ("method", html.escape(str(res.method))),
            ("distribution", html.escape(str(dist))), ("classifier", html.escape(str(clf))),
            ("threat", html.escape(str(threat))), ("definition", html.escape(str(definition)))]
    if res.log_value is not None and res.value is not None and 0 < res.value < 1e-4:
        rows.insert(1, ("log risk", html.escape(number(res.log_value))))
    rows += [(str(k), html.escape(number(v))) for k, v in dict(getattr(res, "details", {}) or {}).items()
             if isinstance(v, (int, float, str)) and len(str(v)) <= 80]  # named quantities, not internals
    return _fields(rows)


# ------------------------------------------------------------------------------------------------------ estimates


def _interval(low: float, high: float) -> str:
    return f"[{number(low, 4)}, {number(high, 4)}]"


def estimate_latex(est: Any) -> str:
    """``$\\hat R = k/n = v \\in [a, b]$`` with the kind, the level and, for a bracket, the verified upper end."""
    level = f"{100 * est.level:g}\\%"
    text = f"\\hat R = {est.k}/{est.n} = {number(est.value, 4)} \\in {_interval(est.ci_low, est.ci_high)}"
    if est.kind == "lower bound":
        text = f"R \\gtrsim {number(est.value, 4)},\\ {text}"
    if est.upper is not None:
        text += f",\\ \\hat R_{{\\mathrm{{upper}}}} = {number(est.upper, 4)} \\in " \
                f"{_interval(est.upper_ci_low, est.upper_ci_high)}"
    return f"$\\displaystyle {text}\\quad \\text{{({est.kind}, {level} Clopper-Pearson)}}$"


def estimate_html(est: Any) -> str:
    """A table of the estimate: kind (and what it means), value and interval, counts, attack, definition, threat,
    the bracket's upper end and the verifier's decided points where there is one, device, seed and time."""
    meaning = KIND_MEANING.get(est.kind, "")
    if est.kind == "bracket" and est.decided == est.n:
        meaning = "the verifier decided every point: the bracket is closed, the interval covers the risk"
    prefix = "&ge; " if est.kind == "lower bound" else ""
    rows = [("kind", f"<b>{html.escape(est.kind)}</b>: {html.escape(meaning)}"),
            ("risk", f"{prefix}{html.escape(number(est.value, 4))} in "
                     f"{html.escape(_interval(est.ci_low, est.ci_high))} ({100 * est.level:g}% Clopper-Pearson)"),
            ("points", f"k = {html.escape(number(est.k))} adversarial of n = {html.escape(number(est.n))}")]
    if est.upper is not None:
        rows.append(("verified upper", f"{html.escape(number(est.upper, 4))} in "
                                       f"{html.escape(_interval(est.upper_ci_low, est.upper_ci_high))}; decided "
                                       f"{html.escape(number(est.decided))} of {html.escape(number(est.n))}"))
    rows += [("attack", html.escape(str(est.method))), ("definition", html.escape(str(est.definition))),
             ("threat", html.escape(str(est.threat))),
             ("run", html.escape(f"seed {est.seed}, offset {est.offset}, {est.device} {est.dtype}, "
                                 f"{est.seconds:.3g} s"))]
    if est.invalid_claims:
        rows.append(("invalid claims", f"<b>{est.invalid_claims}</b> (an attack bug)"))
    return _fields(rows)


# ---------------------------------------------------------------------------------------------------- verification


def verification_html(res: Any) -> str:
    """Verdict counts, the stages that decided (or why not), and the time, of a verification result."""
    counts = res.counts()
    total = sum(counts.values())
    rows = [(k, html.escape(f"{v} of {total}")) for k, v in counts.items()]
    stages = Counter(res.decided_by)
    rows.append(("decided by", html.escape(", ".join(f"{k} {v}" for k, v in stages.most_common())) or "-"))
    seconds = (res.stats or {}).get("seconds")
    if isinstance(seconds, (int, float)):
        rows.append(("time", f"{seconds:.3g} s"))
    return _fields(rows)


# -------------------------------------------------------------------------------------------------- the cross-check

_PROBLEMS = ("disagree", "bound violated", "attack weaker")


def crosscheck_html(results: Sequence[Any]) -> str:
    """The cross-check rows as an HTML table (problem verdicts in bold red), with a summary of the verdicts."""
    header = ("group", "classifier", "threat", "definition", "analytic", "estimate", "interval", "kind", "n",
              "verdict", "detail")
    rows, classes = [], []
    for r in results:
        high = r.upper_ci_high if r.kind == "bracket" and r.upper_ci_high is not None else r.ci_high
        interval = ("&ge; " if r.kind == "lower bound" else "") + html.escape(_interval(r.ci_low, high))
        verdict = html.escape(r.verdict)
        if r.verdict in _PROBLEMS:
            verdict = f'<b style="color:#b00">{verdict.upper()}</b>'
        n = html.escape(number(r.n)) + ("*" if getattr(r, "n_fixed", False) else "")
        rows.append([html.escape(str(c)) for c in (r.group, r.classifier, r.threat, r.definition)]
                    + [html.escape(number(r.analytic, 4)), html.escape(number(r.estimate, 4)), interval,
                       html.escape(r.kind), n, verdict, html.escape(r.detail)])
        classes.append("problem" if r.verdict in _PROBLEMS else "")
    summary = Counter(r.verdict for r in results)
    caption = f"{len(results)} cases: " + ", ".join(f"{v} {c}" for v, c in summary.most_common())
    return html_table(rows, header=header, caption=caption, escape=False, row_classes=classes)
