"""The default cross-check's runner: cached trainings, worker processes equal to the serial run, the CLI flags."""

import dataclasses

import pytest
import torch

from toyrobust import crosscheck as cc
from toyrobust import crosspool, netcache
from toyrobust.cli import main


def _rows(table):
    # everything but the time a case took
    return [{k: v for k, v in dataclasses.asdict(r).items() if k != "seconds"} for r in table]


def test_two_workers_give_the_serial_rows():
    kw = dict(quick=True, trained=False, only="point masses", n=2000, seed=3)
    serial = crosspool.run_default(workers=0, **kw)
    seen = []
    parallel = crosspool.run_default(workers=2, report=lambda i, total, r: seen.append((i, total)), **kw)
    assert len(serial) > 5 and parallel.workers == 2 and parallel.run_wall > 0
    assert _rows(parallel) == _rows(serial)
    assert sorted(seen) == [(i, len(serial)) for i in range(1, len(serial) + 1)]
    assert "on 2 workers" in cc.format_table(parallel)


def test_only_selects_and_keeps_the_serial_seeds():
    table = crosspool.run_default(quick=True, trained=False, only="POINT MASSES", n=500, seed=10)
    assert {r.group for r in table} == {"point masses gap=1"}
    every = cc.run([c for c in cc.default_cases(quick=True, trained=False) if "point masses" in c.group], n=500,
                   seed=10)
    assert _rows(table) == _rows(every)
    with pytest.raises(ValueError, match="only='nothing here' matches no case"):
        crosspool.run_default(quick=True, trained=False, only="nothing here")
    with pytest.raises(ValueError, match="workers must be an integer >= 0"):
        crosspool.run_default(quick=True, trained=False, workers=-1)


@pytest.fixture
def tiny_training(monkeypatch):
    """Two steps per network: the case list's structure without the training time."""
    tiny = {what: {size: dict(steps=2, batch_size=8, lr=1e-3) for size in ("quick", "full")} for what in cc.TRAINING}
    monkeypatch.setattr(cc, "TRAINING", tiny)


def test_a_second_build_loads_every_network_from_the_cache(tiny_training, monkeypatch, tmp_path):
    # the command line resolves the device to torch.device("cpu"); the worker processes get the string "cpu"
    first = cc.default_cases(quick=True, cache=tmp_path, device=torch.device("cpu"))
    assert cc.BUILD_SECONDS["networks_trained"] == 7 and cc.BUILD_SECONDS["networks_cached"] == 0
    assert len(list((tmp_path / "networks").glob("*.pt"))) == 7

    def no_training(*args, **kwargs):
        raise AssertionError("a warm cache must not train")

    monkeypatch.setattr(netcache, "train", no_training)
    second = cc.default_cases(quick=True, cache=tmp_path, device="cpu")
    assert cc.BUILD_SECONDS["networks_trained"] == 0 and cc.BUILD_SECONDS["networks_cached"] == 7
    assert "7 from the cache" in cc.timing_lines([])[0]
    nets = [(a.clf, b.clf) for a, b in zip(first, second, strict=True) if hasattr(a.clf, "state_dict")]
    assert nets and all(str(a.state_dict()) == str(b.state_dict()) for a, b in nets)


def test_no_cache_writes_nothing(tiny_training, monkeypatch, tmp_path):
    monkeypatch.setenv("TOYROBUST_CACHE_DIR", str(tmp_path))
    cc.default_cases(quick=True, cache=False)
    assert cc.BUILD_SECONDS["networks_trained"] == 7
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize("argv,needle", [
    (["--workers", "-1"], "--workers must be an integer >= 0"),
    (["--workers", "two"], "--workers: invalid int value: 'two'"),
    (["--workers", "1.5"], "invalid int value"),
    (["--no-cache", "--cache-dir", "/tmp"], "--no-cache and --cache-dir exclude each other"),
])
def test_bad_crosscheck_flags_are_one_line(argv, needle, capsys):
    assert main(["crosscheck", "--quick", *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and needle in err


def test_cli_cache_dir_and_lines_without_a_terminal(capsys, tmp_path):
    argv = ["crosscheck", "--quick", "--no-trained", "--only", "point masses", "--n", "200",
            "--cache-dir", str(tmp_path / "c")]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "[1/" in captured.err  # stderr is not a terminal here: one line per case, no bar
    assert "agree" in captured.out
