"""The Dask side: a LocalCluster (processes, one thread each) or an existing scheduler, the
dashboard link, and a runner that submits block tasks with retries, shows progress, hands
each result to the caller as it lands and names every block that failed for good."""

from __future__ import annotations

import importlib.util
import logging
import sys
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from archive.blocks import Block


class ArchiveError(Exception):
    """A mistake the user must fix (one line, exit non-zero)."""


@contextmanager
def connect(scheduler: str | None, workers: int, *, dashboard: str | None = "127.0.0.1:8787",
            quiet: bool = False) -> Iterator[Any]:
    """A dask.distributed Client: on `scheduler` (an address such as tcp://host:8786), else on
    a LocalCluster of `workers` processes with one thread each, on loopback. PyMca and ONNX
    Runtime are single-threaded per worker (Dask's nanny sets OMP/MKL/OpenBLAS to 1)."""
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError as e:
        raise ArchiveError("the archive needs Dask: pip install '.[train,archive]'") from e
    has_bokeh = importlib.util.find_spec("bokeh") is not None
    if not has_bokeh:
        dashboard = None  # Dask's dashboard pages need bokeh (pip install bokeh)
    cluster = None
    try:
        if scheduler:
            try:
                client = Client(scheduler, timeout="15s")
            except OSError as e:
                raise ArchiveError(f"no Dask scheduler at {scheduler}: {e}") from e
        else:
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                   host="127.0.0.1", dashboard_address=dashboard,
                                   silence_logs=logging.ERROR)
            client = Client(cluster)
        if not quiet:
            n = len(client.scheduler_info().get("workers", {}))
            where = scheduler or f"LocalCluster {workers} x 1 thread"
            print(f"[archive] Dask: {where}, {n} workers", file=sys.stderr)
            if "dashboard" in client.scheduler_info().get("services", {}) and (
                    has_bokeh or scheduler):  # a remote scheduler may have bokeh
                print(f"[archive] dashboard: {client.dashboard_link}", file=sys.stderr)
        try:
            yield client
        finally:
            client.close()
    finally:
        if cluster is not None:
            cluster.close()


@dataclass
class Task:
    job: str  # the dataset, as the user named it
    stage: str
    block: Block | None
    deps: tuple = ()


@dataclass
class Failure:
    job: str
    where: str  # "block 3 (rows 24-31) fit", or the dataset-level stage
    error: str

    def __str__(self) -> str:
        return f"{self.job}: {self.where}: {self.error}"


class Runner:
    """Submits tasks (each retried `retries` times) and follows them to the end."""

    def __init__(self, client: Any, retries: int) -> None:
        self.client, self.retries = client, retries
        self.tasks: dict[str, Task] = {}
        self._token = uuid.uuid4().hex[:8]
        self._reported: set[str] = set()

    def submit(self, job: str, stage: str, block: Block | None, fn: Callable, *args: Any,
               deps: tuple = ()) -> Any:
        """`deps`: futures among `args` (their failure is reported as theirs, not ours)."""
        where = "all" if block is None else str(block.index)
        key = f"{stage}-{Path(job).stem}-{where}-{self._token}-{len(self.tasks)}"
        future = self.client.submit(fn, *args, key=key, retries=self.retries, pure=False)
        self.tasks[future.key] = Task(job, stage, block, deps)
        return future

    def follow(self, finals: list, on_result: Callable[[Task, Any], None],
               progress: bool = True) -> list[Failure]:
        """Wait for `finals` as they complete; results go to `on_result`; failures (after
        the retries) come back by dataset and block, the root cause only."""
        from dask.distributed import as_completed

        bar = _bar(len(finals), progress)
        failures: list[Failure] = []
        try:
            for future in as_completed(finals):
                if future.status == "error":
                    failures.extend(self._roots(future))
                else:
                    on_result(self.tasks[future.key], future.result())
                bar.update(1)
        finally:
            bar.close()
        return failures

    def _roots(self, future: Any) -> list[Failure]:
        task = self.tasks[future.key]
        erred = [d for d in task.deps if d.status == "error"]
        if erred:  # inherited: report the dependency that failed
            return [f for d in erred for f in self._roots(d)]
        if future.key in self._reported:
            return []
        self._reported.add(future.key)
        exc = future.exception()
        text = f"{type(exc).__name__}: {exc}".splitlines()[0][:300]
        where = task.stage if task.block is None else f"{task.block.name()} {task.stage}"
        tries = self.retries + 1
        return [Failure(task.job, where, f"{text} (failed {tries} time{'s' * (tries > 1)})")]


class _NoBar:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _bar(total: int, enabled: bool) -> Any:
    """tqdm on stderr when asked for and installed; silent otherwise."""
    if not enabled:
        return _NoBar()
    try:
        from tqdm import tqdm
    except ImportError:
        return _NoBar()
    return tqdm(total=total, unit="block", file=sys.stderr, dynamic_ncols=True)
