"""toyrobust.registry.Registry: the one name table behind every registry of the package."""

import pytest

import toyrobust as tr
from toyrobust.registry import Registry


def test_duplicates_refused_aliases_and_listing():
    r = Registry("widget")
    r.register("Alpha", 1, aliases=("a",))
    assert r.lookup("ALPHA") == 1 and r.lookup(" a ") == 1 and "alpha" in r and 3 not in r
    r.register("alpha", 1)  # the same object again is no conflict
    with pytest.raises(ValueError, match="'a' is already registered"):
        r.register("beta", 2, aliases=("a",))
    assert "beta" not in r  # a refused registration registers nothing
    r.register("alpha", 5, replace=True)
    assert r.lookup("a") == 5
    with pytest.raises(ValueError, match=r"widget='gamma' is not a known widget; allowed: alpha"):
        r.lookup("gamma")
    with pytest.raises(TypeError, match="widget must be a widget name"):
        r.lookup(3)
    with pytest.raises(ValueError, match="non-empty"):
        r.register("  ", 1)


def test_removal_forgets_aliases():
    r = Registry("widget")
    r.register("alpha", 1, aliases=("a",))
    assert r.pop("A") == 1 and "a" not in r and r.pop("a", None) is None
    r.register("a", 2)  # the freed alias is a name again
    r.update({"b": 3})
    with pytest.raises(ValueError, match="already registered"):
        r.update({"b": 4})
    del r["b"]
    r.clear()
    assert r.listing() == "(none registered)"


def test_package_tables_are_registries():
    from toyrobust.defenses.evaluate import DEFENSES, SETTINGS
    from toyrobust.risks.special import NUMERIC_FUNCS
    from toyrobust.sweeps.tasks import TASKS

    for table in (tr.attacks.ATTACKS, DEFENSES, SETTINGS, NUMERIC_FUNCS, TASKS):
        assert isinstance(table, Registry) and len(table) > 0
