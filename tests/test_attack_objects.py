"""Attacks are objects: what an estimate's kind comes from, the registry, options validated once, APGD.

A user's own exact attack, defined here in the test file, must make ``estimate_risk`` report ``kind == "exact"``
(and cover the closed form); the same step declared a lower bound, or passed as a plain function, must not.
"""

from __future__ import annotations

import math

import pytest
import torch

import toyrobust as tr
from toyrobust.attacks import ATTACKS, Attack, make_attack
from toyrobust.attacks.apgd import checkpoints

LEVEL = 0.999


class LinearWorstCase(Attack):
    """The closed-form worst case of an affine margin: one full steepest-ascent step against the label."""

    kind = "exact"

    def supports(self, clf, threat, definition="ball", dist=None):
        ok = isinstance(clf, tr.Linear) and definition == "ball"
        return tr.attacks.Support(ok, "" if ok else "linear classifiers under the ball definition only")

    def _attack(self, clf, x, y, threat, definition, dist, generator):
        w = clf.w.to_tensor(x.device, x.dtype)
        return x + threat.steepest_ascent(-y.to(x.dtype)[:, None] * w[None, :])


class LinearStepLowerBound(LinearWorstCase):
    kind = "lower bound"


def steepest_function(clf, x, y, threat, *, definition="ball", dist=None, generator=None):
    return LinearWorstCase().run(clf, x, y, threat, definition=definition, dist=dist)


@pytest.mark.parametrize("threat", [tr.Linf(0.3), tr.L2(0.6), tr.L1(0.8)], ids=["linf", "l2", "l1"])
def test_users_exact_attack_reports_exact_and_covers_closed_form(threat):
    dist, clf = tr.GaussianMixture([1.0, 0.5, -0.3]), tr.Linear([0.9, 0.4, -0.2], 0.1)
    closed = float(tr.risk(dist, clf, threat))
    est = tr.estimate_risk(dist, clf, threat, attack=LinearWorstCase(), n=20_000, seed=5, level=LEVEL)
    assert est.kind == "exact" and est.method == "LinearWorstCase" and est.contains(closed), (est, closed)
    assert est.is_exact
    assert tr.estimate_risk(dist, clf, threat, attack=LinearStepLowerBound(), n=2000).kind == "lower bound"
    assert tr.estimate_risk(dist, clf, threat, attack=steepest_function, n=2000).kind == "lower bound"
    assert tr.estimate_risk(dist, clf, threat, attack=LinearWorstCase, n=2000).kind == "exact"  # a class too


def test_users_attack_refuses_what_it_does_not_support_before_sampling():
    dist = tr.GaussianMixture([1.0, 0.5])
    with pytest.raises(TypeError, match="linear classifiers under the ball definition only"):
        tr.estimate_risk(dist, tr.Radial(1.0), tr.L2(0.1), attack=LinearWorstCase(), n=10)
    with pytest.raises(TypeError, match="exact_attack.*no exact attack for classifier type"):
        tr.estimate_risk(dist, tr.LinearModel(2), tr.L2(0.1), attack="exact", n=10)


def test_builtin_kinds_and_names():
    assert ATTACKS.lookup("exact") is tr.attacks.ExactAttack and tr.attacks.ExactAttack.kind == "exact"
    for name in ("pgd", "apgd", "fgsm", "cw", "projection", "on-manifold", "blackbox", "bpda", "eot"):
        assert ATTACKS.lookup(name).kind == "lower bound", name
    dist, clf = tr.Tsipras(0.9, 2.0), tr.Linear([0.5, 1.0])
    assert tr.estimate_risk(dist, clf, tr.Linf(0.5), attack="exact", n=500).kind == "exact"
    assert tr.estimate_risk(dist, clf, tr.Linf(0.5), attack="apgd", n=500,
                            attack_options={"steps": 5}).kind == "lower bound"
    assert tr.APGD is tr.attacks.APGD  # registered classes are package attributes, found by tr.<Name> too


def test_registry_refuses_duplicates_and_lists_names():
    with pytest.raises(ValueError, match="already registered"):
        type("AnotherPGD", (Attack,), {"name": "pgd"})
    with pytest.raises(ValueError, match=r"attack='nope' is not a known attack; allowed: .*apgd"):
        tr.estimate_risk(tr.Tsipras(), tr.Linear([1.0, 1.0]), tr.Linf(0.1), attack="nope", n=10)
    with pytest.raises(ValueError, match="kind"):
        type("Odd", (Attack,), {"kind": "upper bound"})


def test_options_validated_once_at_construction():
    with pytest.raises(ValueError, match="steps"):
        tr.attacks.PGD(steps=-1)
    with pytest.raises(TypeError, match=r"'pgd' has no option 'stepz'; its options: early_stop, loss"):
        make_attack("pgd", {"stepz": 3})
    with pytest.raises(ValueError, match="steps"):  # before any point is drawn
        tr.estimate_risk(tr.Tsipras(), tr.Linear([1.0, 1.0]), tr.Linf(0.1), attack="pgd",
                         attack_options={"steps": -1}, n=10**15, max_n=10**15)
    a = tr.attacks.PGD(steps=7)
    assert a.options["steps"] == 7 and a.replace(restarts=2).options == {**a.options, "restarts": 2}
    assert a(tr.Linear([1.0]), torch.zeros(3, 1), torch.ones(3), tr.Linf(0.1), steps=2).x_adv.shape == (3, 1)
    assert repr(a).startswith("PGD(steps=7")


def test_apgd_checkpoints_are_croce_hein():
    # p_0 = 0, p_1 = 0.22, p_{j+1} = p_j + max(p_j - p_{j-1} - 0.03, 0.06): 0.41, 0.57, 0.70, 0.80, 0.87, 0.93, 0.99
    assert checkpoints(100) == [22, 41, 57, 70, 80, 87, 93, 99]


@pytest.mark.parametrize("threat", [tr.Linf(0.2), tr.L2(0.5)], ids=["linf", "l2"])
def test_apgd_reaches_linear_closed_form(threat):
    """On a linear model the worst case is the steepest step: APGD must find every point the closed form counts."""
    dist = tr.GaussianMixture([1.0, -0.5, 0.25, 0.8])
    model = tr.LinearModel.from_weights([0.7, -0.4, 0.3, 0.5], 0.05, dtype=torch.float64)
    closed = float(tr.risk(dist, tr.Linear([0.7, -0.4, 0.3, 0.5], 0.05), threat))
    est = tr.estimate_risk(dist, model, threat, attack="apgd", attack_options={"steps": 20}, n=20_000, seed=3,
                           level=LEVEL)
    assert est.kind == "lower bound" and est.invalid_claims == 0
    assert est.contains(closed), (est, closed)


def test_apgd_at_least_pgd_on_a_relu_net_and_within_the_verifier():
    """Same gradient budget: APGD finds at least PGD's adversarial points (up to noise), and the verifier never
    proves robust a point APGD broke (estimate_risk raises if it does)."""
    dist = tr.Tsipras(p=0.9, eta=1.0, d=1)
    net = tr.MLP(2, (32,), seed=0, dtype=torch.float64)
    tr.train(net, dist, steps=300, batch_size=128, lr=0.01, seed=0, progress=False)
    threat = tr.Linf(0.6)
    opts = dict(n=2000, seed=1)
    pgd = tr.estimate_risk(dist, net, threat, attack=tr.attacks.PGD(steps=20), **opts)
    apgd = tr.estimate_risk(dist, net, threat, attack=tr.APGD(steps=20), **opts)
    assert apgd.k >= pgd.k - 3 * math.sqrt(pgd.k + 1), (apgd, pgd)
    assert apgd.grad_evals <= 20 * opts["n"]
    bracket = tr.estimate_risk(dist, net, threat, attack=tr.APGD(steps=20), upper="verify", **opts)
    assert bracket.kind == "bracket" and bracket.k <= bracket.upper_k


def test_training_takes_an_attack_object():
    dist = tr.Tsipras(p=0.9, eta=1.0, d=1)
    net = tr.MLP(2, (8,), seed=0)
    res = tr.train(net, dist, steps=5, batch_size=32, adversarial=tr.APGD(steps=3), threat=tr.Linf(0.1),
                   seed=0, progress=False, eval_n=64)
    assert res is not None
    with pytest.raises(ValueError, match="adversarial must be None, 'closed-form' or an attack name"):
        tr.train(net, dist, steps=1, adversarial="nope", threat=tr.Linf(0.1), progress=False)


def test_defend_takes_attack_names_and_objects():
    from toyrobust.defenses.evaluate import EvalConfig, evaluate_defenses

    rows = evaluate_defenses(defenses=["odds-are-odd + MLP"], settings=["Tsipras 2-D (p=0.9, eta=3)"],
                             config=EvalConfig(quick=True, n=100), attacks=["fgsm", ("pgd", {"steps": 3}), "exact"])
    (row,) = rows
    for label in ("fgsm", "pgd"):
        assert 0.0 <= row.extras[f"{label} risk"] <= row.extras[f"{label} high"] <= 1.0
    assert math.isnan(row.extras["exact_attack risk"])  # no exact attack on a network: NaN, not a crash


def test_cli_attack_spec_errors_are_one_line(capsys):
    from toyrobust.cli import main

    for spec, text in (("nope", "not a known attack"), ("pgd:stepz=3", "has no option 'stepz'"),
                       ("pgd:steps", "OPTION=VALUE")):
        assert main(["defend", "--quick", "--attack", spec]) == 2
        err = capsys.readouterr().err.strip()
        assert text in err and "\n" not in err, err


@pytest.mark.parametrize("name", ["pgd", "apgd", "fgsm", "exact", "cw"])
def test_attacks_refuse_non_finite_points(name):
    x = torch.tensor([[0.0, 1.0], [math.nan, 0.0]])
    with pytest.raises(ValueError, match="x must be finite.*row 1"):
        make_attack(name).run(tr.Linear([1.0, 1.0]), x, torch.tensor([1, -1]), tr.Linf(0.1))
