"""Constraint.check_array: the vectorised check of risk grids gives the scalar check's answer for every entry."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import toyrobust as tr
from toyrobust import constraints as c

CONSTRAINTS = [c.real, c.positive, c.nonnegative, c.unit_interval_open, c.integer_at_least(2)] + [
    k for cls in tr.registered_distributions().values() for k in cls.arg_constraints.values()]


@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-5, 5).map(float),
                          st.sampled_from([0.0, -0.0, 1.0, 0.5, 1e-320, 1e308])), min_size=0, max_size=20),
       st.sampled_from(range(len(CONSTRAINTS))))
def test_check_array_equals_scalar_check(values, which):
    k = CONSTRAINTS[which]
    got = k.check_array(np.array(values, dtype=float))
    want = np.array([bool(k.check(v)) for v in values], dtype=bool)
    assert got.shape == (len(values),) and (got == want).all(), (k.name, values, got, want)


def test_grid_refuses_like_the_scalar_path():
    import sympy

    P, E = sympy.Symbol("p", positive=True), sympy.Symbol("eta", positive=True)
    f = tr.risk_function(tr.Tsipras(p=P, eta=E), tr.Linear([1.0, 1.0]), None, symbols=(P, E))
    assert np.isfinite(f(np.array([0.7, 0.9]), np.array([1.0, 2.0]))).all()
    for bad_p, bad_eta, name in ((1.0, 1.0, "p"), (0.7, -1.0, "eta"), (np.nan, 1.0, "p"), (0.7, 0.0, "eta")):
        try:
            f(np.array([0.7, bad_p]), np.array([1.0, bad_eta]))
        except ValueError as err:
            assert str(err).startswith(f"{name} (symbol {name}) must be") and "1 invalid value(s)" in str(err)
        else:
            raise AssertionError((bad_p, bad_eta))
