"""The cache of trained networks: keys, hits, atomic files, damaged files."""

import logging

import pytest
import torch

import toyrobust as tr
from toyrobust import netcache
from toyrobust.models import MLP, LinearModel
from toyrobust.threats import Linf

OPTS = dict(steps=5, batch_size=16, lr=0.01, seed=0, eval_n=0, progress=False)


def _key(model=None, dist=None, **changes):
    model = model if model is not None else MLP(2, (4,), seed=0)
    dist = dist if dist is not None else tr.GaussianMixture([1.0, 0.5])
    return netcache.cache_key(model, dist, {**OPTS, **changes})[0]


def test_cache_dir_follows_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("TOYROBUST_CACHE_DIR", str(tmp_path / "a"))
    assert netcache.cache_dir() == tmp_path / "a"
    monkeypatch.delenv("TOYROBUST_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert netcache.cache_dir() == tmp_path / "x" / "toyrobust"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert netcache.cache_dir() == tmp_path / "home" / ".cache" / "toyrobust"
    assert netcache.cache_dir(tmp_path / "o") == tmp_path / "o"


def test_the_key_changes_with_every_field():
    base = _key()
    assert _key() == base  # deterministic
    others = [
        _key(model=MLP(2, (5,), seed=0)),                       # architecture
        _key(model=MLP(2, (4,), seed=1)),                       # initialisation seed
        _key(model=MLP(2, (4,), seed=0, dtype=torch.float64)),  # dtype
        _key(dist=tr.GaussianMixture([1.0, 0.6])),              # distribution parameters
        _key(dist=tr.GaussianMixture([1.0, 0.5], sigma=2.0)),
        _key(steps=6), _key(batch_size=32), _key(lr=0.02), _key(seed=1),  # training settings
        _key(schedule="cosine"), _key(optimizer="sgd"),
        _key(threat=Linf(0.1), adversarial="pgd"),
    ]
    assert len({base, *others}) == len(others) + 1
    key, config = netcache.cache_key(MLP(2, (4,), seed=0), tr.GaussianMixture([1.0, 0.5]), dict(OPTS))
    assert config["toyrobust"] == tr.__version__ and config["torch"] == torch.__version__ and config["code"]


def test_the_device_is_keyed_by_its_type():
    # the command line passes torch.device("cpu"), a worker process the string "cpu": one key
    assert _key(device="cpu") == _key(device=torch.device("cpu")) == _key()
    assert _key(device="meta") != _key()


def test_versions_and_code_enter_the_key(monkeypatch):
    base = _key()
    monkeypatch.setattr(netcache, "__version__", "9.9.9")
    assert _key() != base
    monkeypatch.undo()
    monkeypatch.setattr(netcache, "_source_hash", lambda dist: "edited")
    assert _key() != base


def test_a_hit_loads_the_weights_without_training(monkeypatch, tmp_path):
    dist = tr.GaussianMixture([1.0, 0.5])
    first = MLP(2, (4,), seed=0)
    assert netcache.train_cached(first, dist, cache=tmp_path, **OPTS) is not None
    files = list((tmp_path / "networks").glob("*.pt"))
    assert len(files) == 1 and not list((tmp_path / "networks").glob(".tmp-*"))

    def no_training(*args, **kwargs):
        raise AssertionError("a cache hit must not train")

    monkeypatch.setattr(netcache, "train", no_training)
    second = MLP(2, (4,), seed=0)
    assert netcache.train_cached(second, dist, cache=tmp_path, **OPTS) is None
    for a, b in zip(first.state_dict().values(), second.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert not second.training
    # the progress bar is not part of the key
    assert netcache.train_cached(MLP(2, (4,), seed=0), dist, cache=tmp_path, **{**OPTS, "progress": False}) is None


def test_a_miss_trains_once_per_configuration(monkeypatch, tmp_path):
    calls = []
    real = netcache.train
    monkeypatch.setattr(netcache, "train", lambda *a, **k: calls.append(1) or real(*a, **k))
    dist = tr.GaussianMixture([1.0, 0.5])
    for steps in (5, 5, 6):
        netcache.train_cached(LinearModel(2), dist, cache=tmp_path, **{**OPTS, "steps": steps})
    assert len(calls) == 2


def test_no_cache_always_trains_and_writes_nothing(monkeypatch, tmp_path):
    monkeypatch.setenv("TOYROBUST_CACHE_DIR", str(tmp_path))
    dist = tr.GaussianMixture([1.0, 0.5])
    for _ in range(2):
        assert netcache.train_cached(MLP(2, (4,), seed=0), dist, cache=False, **OPTS) is not None
    assert not tmp_path.joinpath("networks").exists()


@pytest.mark.parametrize("damage", ["truncate", "garbage", "other key", "empty"])
def test_a_damaged_file_is_ignored_and_retrained(tmp_path, caplog, damage):
    dist = tr.GaussianMixture([1.0, 0.5])
    trained = MLP(2, (4,), seed=0)
    netcache.train_cached(trained, dist, cache=tmp_path, **OPTS)
    (path,) = (tmp_path / "networks").glob("*.pt")
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        path.write_bytes(b"not a torch file at all")
    elif damage == "empty":
        path.write_bytes(b"")
    else:  # a whole file, but written for another configuration
        other = MLP(2, (4,), seed=0)
        netcache.train_cached(other, dist, cache=tmp_path, **{**OPTS, "steps": 6})
        newest = max((tmp_path / "networks").glob("*.pt"), key=lambda p: p.stat().st_mtime_ns)
        path.write_bytes(newest.read_bytes())
    again = MLP(2, (4,), seed=0)
    with caplog.at_level(logging.INFO, logger="toyrobust.netcache"):
        assert netcache.train_cached(again, dist, cache=tmp_path, **OPTS) is not None  # trained again
    lines = [r.getMessage() for r in caplog.records if r.name == "toyrobust.netcache"]
    assert len(lines) == 1 and "ignoring" in lines[0] and str(path) in lines[0]
    for a, b in zip(trained.state_dict().values(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b)  # the same seeded training: the same weights
    # the file was rewritten: the next call is a hit
    assert netcache.train_cached(MLP(2, (4,), seed=0), dist, cache=tmp_path, **OPTS) is None


def test_an_unwritable_cache_still_trains(tmp_path, caplog):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with caplog.at_level(logging.INFO, logger="toyrobust.netcache"):
        res = netcache.train_cached(MLP(2, (4,), seed=0), tr.GaussianMixture([1.0, 0.5]), cache=blocker, **OPTS)
    assert res is not None
    assert any("could not write" in r.getMessage() for r in caplog.records)
