"""Parameter sweeps on any concurrent.futures executor (a local process pool, or a Dask cluster), crash-safe.

    import toyrobust as tr
    from toyrobust.sweeps import load_results, merge_shards

    res = tr.sweep({"dist": "tsipras", "p": 0.9, "eta": 3, "classifier": ["bayes", "robust"],
                    "threat": ["linf:0.5", "linf:1.5"], "n": 200_000, "shards": 4, "seed": 0},
                   "estimate", store="results/tsipras")
    merge_shards(load_results("results/tsipras"))       # one exact interval per estimate

Modules: :mod:`~toyrobust.sweeps.grid` (grids, task ids), :mod:`~toyrobust.sweeps.store` (the results store),
:mod:`~toyrobust.sweeps.tasks` (the task registry and the built-in tasks), :mod:`~toyrobust.sweeps.runner`
(the driver), :mod:`~toyrobust.sweeps.command` (``toyrobust sweep CONFIG``). Nothing here imports Dask or
pandas at import time; pandas is needed to read a store into a DataFrame, Dask only to run on a cluster.
"""

from .grid import TaskSpec, expand_grid
from .runner import SweepResult, default_executor, plan, sweep
from .store import Store, load_results, to_parquet
from .tasks import (
    TASKS,
    SweepTask,
    TaskContext,
    merge_estimates,
    merge_shards,
    register_task,
    shard_offset,
    shard_sizes,
)

__all__ = ["sweep", "SweepResult", "plan", "default_executor", "expand_grid", "TaskSpec", "Store", "load_results",
           "to_parquet", "TASKS", "SweepTask", "TaskContext", "register_task", "merge_estimates", "merge_shards",
           "shard_offset", "shard_sizes"]
