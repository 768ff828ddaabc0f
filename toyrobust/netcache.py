"""A cache of trained networks on this machine, keyed by everything that decides their weights.

:func:`train_cached` trains a model with :func:`toyrobust.training.train` the first time and afterwards loads the
weights from ``<cache>/networks/<key>.pt``. The key is a SHA-256 hash of

* the model's architecture (``repr(model)``), the parameters' dtype and its initial weights (which carry the
  initialisation seed);
* the distribution (its repr, and the bytes of any array parameter);
* every setting of the training run (steps, batch size, learning rate and schedule, optimizer, adversarial
  training and threat, seed) and the device type;
* the toyrobust and torch versions and a hash of the source of the training, model and distribution code.

Nothing is ever downloaded: the cache holds only what this machine trained. Its folder is ``$TOYROBUST_CACHE_DIR``
if set, else ``$XDG_CACHE_HOME/toyrobust``, else ``~/.cache/toyrobust`` (:func:`cache_dir`). Files are written
atomically (a temporary file renamed over the target), so a reader sees a whole file or none; a file that cannot
be read or does not match its key (a crash of the whole machine, a disk error, an edit) is ignored, logged once
on the ``toyrobust.netcache`` logger, and the network is trained again and the file rewritten.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from . import __version__
from . import models as _models
from . import training as _training
from .training import TrainResult, train

__all__ = ["cache_dir", "cache_key", "cache_path", "train_cached", "CACHE_ENV", "CACHE_FORMAT"]

#: the environment variable that relocates the cache
CACHE_ENV = "TOYROBUST_CACHE_DIR"
#: the format tag of a cache file (part of the key)
CACHE_FORMAT = "toyrobust-net-1"

log = logging.getLogger(__name__)


def cache_dir(override: str | os.PathLike | None = None) -> Path:
    """The cache folder: ``override``, else ``$TOYROBUST_CACHE_DIR``, else ``$XDG_CACHE_HOME/toyrobust``, else
    ``~/.cache/toyrobust`` (empty variables count as unset). Nothing is created here."""
    if override is not None:
        return Path(override).expanduser()
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "toyrobust"


def _source_hash(dist: Any) -> str:
    """SHA-256 of the source files whose code decides the trained weights (training, models, the distribution)."""
    h = hashlib.sha256()
    files = [inspect.getsourcefile(_training), inspect.getsourcefile(_models)]
    try:
        files.append(inspect.getsourcefile(type(dist)))
    except TypeError:  # a class defined without a source file
        pass
    for f in files:
        if f and os.path.exists(f):
            h.update(Path(f).read_bytes())
    return h.hexdigest()


def _param_text(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        return f"array{value.shape}:{value.dtype}:{hashlib.sha256(np.ascontiguousarray(value).tobytes()).hexdigest()}"
    return repr(value)


def _weights_hash(model: nn.Module) -> str:
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(str(t.dtype).encode())
        h.update(repr(tuple(t.shape)).encode())
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


def cache_key(model: nn.Module, dist: Any, train_options: dict[str, Any], device: Any = None) -> tuple[str, dict]:
    """``(key, config)``: the hex key of a training run and the configuration it hashes (see the module docstring).

    Args:
        model: the untrained model (its initial weights are part of the key).
        dist: the distribution it is trained on.
        train_options: the keyword arguments of :func:`~toyrobust.training.train` (``steps``, ``lr``, ...).
        device: where the training runs (its type is part of the key: CPU and CUDA round differently).
    """
    params = getattr(dist, "_params", {})
    device = device if device is not None else train_options.get("device")
    first = next(model.parameters(), None)
    dev = torch.device(device) if device is not None else (first.device if first is not None else torch.device("cpu"))
    config = {
        "format": CACHE_FORMAT,
        "toyrobust": __version__,
        "torch": torch.__version__,
        "code": _source_hash(dist),
        "model": repr(model),
        "dtype": str(first.dtype) if first is not None else "none",
        "init": _weights_hash(model),
        "dist": repr(dist),
        "dist_params": {k: _param_text(v) for k, v in params.items()},
        # the device is keyed by its type below ("cpu" and torch.device("cpu") are one device)
        "train": {k: _param_text(v) for k, v in sorted(train_options.items()) if k != "device"},
        "device": dev.type,
    }
    key = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:32]
    return key, config


def cache_path(folder: str | os.PathLike, key: str) -> Path:
    """Where the network with ``key`` lives under the cache ``folder``."""
    return Path(folder) / "networks" / f"{key}.pt"


def _load(path: Path, key: str, model: nn.Module) -> bool:
    """Load the cached weights into ``model``; False (one log line) for a file that is unreadable or not ``key``."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        if not isinstance(state, dict) or state.get("format") != CACHE_FORMAT or state.get("key") != key:
            raise ValueError("not a cache file of this key")
        first = next(model.parameters())
        model.load_state_dict({k: v.to(first.device) for k, v in state["model"].items()})
    except Exception as err:  # noqa: BLE001 (any damage to a cache file means: train again)
        log.info("toyrobust: ignoring the unreadable network cache file %s (%s: %s); training again",
                 path, type(err).__name__, " ".join(str(err).split())[:200])
        return False
    return True


def _save(path: Path, key: str, config: dict, model: nn.Module) -> None:
    """Write the weights atomically (temporary file, fsync, rename); a cache that cannot be written is logged."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".pt", dir=path.parent)
        try:
            with os.fdopen(fd, "wb") as handle:
                torch.save({"format": CACHE_FORMAT, "key": key, "config": json.dumps(config, sort_keys=True),
                            "model": {k: v.detach().cpu() for k, v in model.state_dict().items()}}, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except OSError as err:
        log.info("toyrobust: could not write the network cache file %s (%s); continuing without it", path, err)


def train_cached(model: nn.Module, dist: Any, *, cache: str | os.PathLike | bool | None = None,
                 **train_options: Any) -> TrainResult | None:
    """Train ``model`` on ``dist`` like :func:`~toyrobust.training.train`, or load its weights from the cache.

    Args:
        model: the untrained model; trained (or loaded) in place and left in eval mode.
        dist: the distribution.
        cache: a cache folder, None for :func:`cache_dir`'s default, or False (no cache: always train).
        **train_options: the keyword arguments of :func:`~toyrobust.training.train` (``steps`` required).
            ``progress`` and ``eval_n``/``eval_every`` do not change the weights and are not part of the key.

    Returns:
        the :class:`~toyrobust.training.TrainResult` when it trained, None when the weights came from the cache.
    """
    if cache is False:
        return train(model, dist, **train_options)
    if cache is True:
        cache = None
    keyed = {k: v for k, v in train_options.items() if k not in ("progress", "eval_n", "eval_every", "callback")}
    key, config = cache_key(model, dist, keyed, train_options.get("device"))
    path = cache_path(cache_dir(cache), key)
    if path.exists() and _load(path, key, model):
        model.to(train_options.get("device") or next(model.parameters()).device)
        model.eval()
        return None
    result = train(model, dist, **train_options)
    _save(path, key, config, model)
    return result
