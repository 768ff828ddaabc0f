"""Constraints, block vectors and classifiers."""

import math

import numpy as np
import pytest
import sympy
import torch
from hypothesis import given
from hypothesis import strategies as st

import toyrobust as tr
from toyrobust.blocks import Blocks, point_symbols
from toyrobust.constraints import check, integer_at_least, positive, unit_interval_open
from toyrobust.testing import batches, linear_classifiers, quadratic_classifiers


# ----------------------------------------------------------------------------- constraints
def test_constraints_three_valued_for_symbols():
    assert unit_interval_open.check(0.5) is True
    assert unit_interval_open.check(1.0) is False
    assert unit_interval_open.check(sympy.Symbol("p")) is None
    assert unit_interval_open.check(sympy.Symbol("p", negative=True)) is False
    assert positive.check(sympy.Symbol("e", positive=True)) is True
    assert integer_at_least(2).check(sympy.Symbol("D", integer=False)) is False
    assert integer_at_least(2).check(sympy.Symbol("D", integer=True, positive=True)) is None


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, "0.5", None, True, [0.5]])
def test_constraint_check_rejects_non_finite_and_non_numbers(value):
    with pytest.raises((ValueError, TypeError), match="p must be"):
        check("p", value, unit_interval_open)


def test_check_message_names_value_and_set():
    with pytest.raises(ValueError) as info:
        check("eta", -2.0, positive)
    assert "eta" in str(info.value) and "-2.0" in str(info.value) and "> 0" in str(info.value)


def test_check_normalises_numpy_and_tensor_scalars():
    assert check("p", np.float64(0.3), unit_interval_open) == 0.3
    assert check("p", torch.tensor(0.25), unit_interval_open) == 0.25
    assert check("d", np.int64(3), integer_at_least(1)) == 3


# ----------------------------------------------------------------------------- blocks
def test_blocks_norms_match_numpy():
    rng = np.random.default_rng(0)
    v = rng.normal(size=13)
    b = Blocks.from_array(v)
    assert b.norm(1) == pytest.approx(np.abs(v).sum())
    assert b.norm(2) == pytest.approx(np.linalg.norm(v))
    assert b.norm(math.inf) == pytest.approx(np.abs(v).max())
    np.testing.assert_array_equal(b.to_numpy(), v)


def test_blocks_symbolic_norms_of_robust_nonrobust_mean():
    D = sympy.Symbol("D", integer=True, positive=True)
    mean = tr.GaussianMixture.robust_nonrobust(D).mean
    assert sympy.simplify(mean.norm(2) ** 2 - (1 + sympy.log(D))) == 0
    assert float(mean.norm(2).subs(D, 100)) == pytest.approx(math.sqrt(1 + math.log(100)), rel=1e-14)
    # the symbolic L1 norm agrees with the dense one at D = 37
    dense = tr.GaussianMixture.robust_nonrobust(37).mean.to_numpy()
    assert float(mean.norm(1).subs(D, 37)) == pytest.approx(np.abs(dense).sum(), rel=1e-12)


def test_blocks_dot_and_restrict():
    a = Blocks([(1.0, 2), (3.0, 3)])
    b = Blocks([(2.0, 1), (-1.0, 4)])
    assert a.dot(b) == pytest.approx(np.dot(a.to_numpy(), b.to_numpy()))
    inside, outside = a.restrict(slice(1, 4))
    np.testing.assert_array_equal(inside.to_numpy(), [0, 1, 3, 3, 0])
    np.testing.assert_array_equal(outside.to_numpy(), [1, 0, 0, 0, 3])
    inside, outside = a.restrict([0, 4])
    np.testing.assert_array_equal(inside.to_numpy(), [1, 0, 0, 0, 3])
    with pytest.raises(ValueError, match="dimensions"):
        a.dot(Blocks([(1.0, 2)]))


def test_blocks_symbolic_restrict_drops_first_coordinate():
    D = sympy.Symbol("D", integer=True, positive=True)
    mean = tr.GaussianMixture.robust_nonrobust(D).mean
    inside, outside = mean.restrict(slice(1, None))
    assert sympy.simplify(inside.norm(1) - sympy.sqrt((D - 1) * sympy.log(D))) == 0
    assert sympy.simplify(outside.norm(1) - 1) == 0


# ----------------------------------------------------------------------------- classifiers
@given(st.integers(1, 6).flatmap(lambda d: st.tuples(linear_classifiers(d), batches(d))))
def test_linear_margin_is_affine_and_matches_expr(case):
    clf, x = case
    w = torch.tensor(clf.w.to_numpy(), dtype=torch.float64)
    assert torch.allclose(clf.margin(x), x @ w + clf.b)
    pt = point_symbols(clf.dim)
    f = sympy.lambdify(list(pt), clf.margin_expr(pt), "math")
    ref = torch.tensor([f(*r) for r in x.tolist()], dtype=torch.float64)
    assert torch.allclose(clf.margin(x), ref, atol=1e-9)


@given(st.integers(1, 5).flatmap(lambda d: st.tuples(quadratic_classifiers(d), batches(d))))
def test_quadratic_margin_matches_expr(case):
    clf, x = case
    pt = point_symbols(clf.dim)
    f = sympy.lambdify(list(pt), clf.margin_expr(pt), "math")
    ref = torch.tensor([f(*r) for r in x.tolist()], dtype=torch.float64)
    assert torch.allclose(clf.margin(x), ref, atol=1e-9)


def test_radial_and_threshold_predictions_and_tie_rule():
    x = torch.tensor([[3.0, 4.0], [0.0, 1.0], [6.0, 8.0]], dtype=torch.float64)
    assert tr.Radial(5.0).predict(x).tolist() == [1, -1, 1]
    thr = tr.Linear([-1.0], 0.5)  # "x <= 0.5 means +1"
    assert thr.predict(torch.tensor([[0.0], [0.5], [0.51]])).tolist() == [1, 1, -1]
    assert thr.predict(torch.tensor([[0.0]])).dtype == torch.int64


def test_torch_module_one_and_two_logits_agree():
    torch.manual_seed(0)  # test-local weights; library code never seeds globally
    one = torch.nn.Linear(3, 1).double()
    two = torch.nn.Linear(3, 2).double()
    with torch.no_grad():
        two.weight[0] = -one.weight[0] / 2
        two.weight[1] = one.weight[0] / 2
        two.bias[0] = -one.bias[0] / 2
        two.bias[1] = one.bias[0] / 2
    x = torch.randn(20, 3, dtype=torch.float64)
    a, b = tr.as_classifier(one), tr.as_classifier(two)
    assert torch.allclose(a.margin(x), b.margin(x))
    assert torch.equal(a.predict(x), b.predict(x))
    assert torch.allclose(a.margin(x), one(x)[:, 0])


def test_classifier_shape_and_type_errors():
    with pytest.raises(ValueError, match="columns"):
        tr.Linear([1.0, 2.0]).margin(torch.zeros(4, 3))
    with pytest.raises(ValueError, match=r"\(N, d\)"):
        tr.Linear([1.0]).margin(torch.zeros(4))
    with pytest.raises(TypeError, match="w entries"):
        tr.Linear(["a"])
    with pytest.raises(ValueError, match="w"):
        tr.Linear([])
    with pytest.raises(ValueError, match="b"):
        tr.Linear([1.0], math.nan)
    with pytest.raises(TypeError, match="clf"):
        tr.as_classifier(3)
    with pytest.raises(ValueError, match="output"):
        tr.TorchClassifier(torch.nn.Linear(2, 3)).margin(torch.zeros(1, 2))


def test_margin_is_differentiable():
    x = torch.randn(5, 3, dtype=torch.float64, requires_grad=True)
    for clf in (tr.Linear([1.0, -2.0, 0.5], 0.1), tr.Radial(1.0), tr.Quadratic([1.0, 2.0, 3.0], 1.0)):
        (g,) = torch.autograd.grad(clf.margin(x).sum(), x)
        assert g.shape == x.shape and torch.isfinite(g).all()
