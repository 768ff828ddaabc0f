"""Shared test settings: hypothesis without deadlines (torch's first call is slow), modest example counts."""

import os

import pytest
import torch
from hypothesis import HealthCheck, settings

settings.register_profile("default", deadline=None, max_examples=40,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("thorough", deadline=None, max_examples=500)
# CI (.ci/run sets HYPOTHESIS_PROFILE=ci): the same examples on every run, so a red build means a change broke
# something. A local run keeps drawing new examples; each edge case they found in CI rehearsals (a subnormal knot
# spacing, nodes a subnormal apart) was fixed and kept as a fixed test
settings.register_profile("ci", parent=settings.get_profile("default"), derandomize=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture(autouse=True)
def _one_thread():
    """One intra-op torch thread per test: the tests use small tensors, which gain nothing from two threads and
    lose up to 10x on a loaded 2-core machine; the caller's setting is restored afterwards."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(autouse=True)
def _private_network_cache(monkeypatch, tmp_path_factory):
    """Trained networks are cached under a fresh temporary folder, never under the user's ~/.cache."""
    monkeypatch.setenv("TOYROBUST_CACHE_DIR", str(tmp_path_factory.mktemp("netcache")))
