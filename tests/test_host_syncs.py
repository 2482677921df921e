"""Device-to-host reads in a search round: on a GPU each one stalls the stream until the queued work
is done, so the steps keep their diagnostics on the device and the driver reads them once per log
interval and once at the end of each epoch (run/driver.py).

The spy counts what a read reaches on any device: ``aten._local_scalar_dense`` (``.item()``,
``float(t)``, ``bool(t)``, a Python branch on a tensor) through a ``TorchDispatchMode``, and
``Tensor.tolist``/``Tensor.numpy``, which read memory without dispatching. Reads made inside
``torch.optim`` are not counted: the optimisers keep their step counters as host tensors on every
device (``capturable=False``), so those reads never wait for the GPU.
"""

from __future__ import annotations

import collections
import sys

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from dcpnas.search.methods import MethodContext, build_method
from dcpnas.search.run.api import resolve_search_config
from dcpnas.search.run.driver import PhaseDriver
from dcpnas.search.run.inputs import build_search_data
from dcpnas.utils.distributed import DistEnv, seed_everything

#: The only place a round reads from the device: the driver's Meter.read (the sums, the guard and
#: the logged step's values, in one transfer).
ALLOWED = {"search/run/driver.py:read"}


def _site() -> str | None:
    """``file:function`` of the innermost dcpnas frame, or None inside torch.optim."""
    f = sys._getframe(2)
    while f is not None:
        name = f.f_code.co_filename.replace("\\", "/")
        if "/torch/optim/" in name:
            return None
        if "/dcpnas/" in name:
            return f"{name.split('/dcpnas/')[-1]}:{f.f_code.co_name}"
        f = f.f_back
    return "?"


class HostReads(TorchDispatchMode):
    """Counts device-to-host reads by the dcpnas function that makes them."""

    def __init__(self):
        super().__init__()
        self.sites: collections.Counter = collections.Counter()

    def _count(self):
        site = _site()
        if site is not None:
            self.sites[site] += 1

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten._local_scalar_dense.default:
            self._count()
        return func(*args, **(kwargs or {}))

    def __enter__(self):
        self._saved = torch.Tensor.tolist, torch.Tensor.numpy
        spy = self

        def tolist(t, *a, **k):
            spy._count()
            return spy._saved[0](t, *a, **k)

        def numpy(t, *a, **k):
            spy._count()
            return spy._saved[1](t, *a, **k)

        torch.Tensor.tolist, torch.Tensor.numpy = tolist, numpy
        return super().__enter__()

    def __exit__(self, *exc):
        torch.Tensor.tolist, torch.Tensor.numpy = self._saved
        return super().__exit__(*exc)


def test_the_spy_sees_every_kind_of_read():
    x = torch.ones(3)
    with HostReads() as spy:
        x.sum().item()
        float(x[0])
        bool(x[1] > 0)
        x.tolist()
        x.numpy()
        if x[2] > 0:
            pass
        torch.optim.SGD([torch.nn.Parameter(torch.ones(1))], lr=0.1)  # no read
    assert sum(spy.sites.values()) == 6


STEPS = 2


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def one_round(method_name: str, log_every: int, **over) -> tuple[collections.Counter, int]:
    overrides = ["supernet.C=2", "data.limit=32", "data.batch_size=8", "schedule.rounds=1",
                 f"schedule.steps_per_epoch={STEPS}", "threads=1", f"log_every={log_every}",
                 *[f"{k}={v}" for k, v in over.items()]]
    cfg = resolve_search_config(preset="quick", method=method_name, overrides=overrides)
    seed_everything(0)
    env = DistEnv(device=torch.device("cpu"))
    data = build_search_data(cfg, env)
    method = build_method(MethodContext(cfg, data, env.device))
    records = []
    driver = PhaseDriver(data.train, data.val, max_steps=STEPS, log_every=log_every,
                         on_step=records.append)
    with HostReads() as spy:
        for epoch in range(method.num_epochs()):   # one round: every epoch of it
            method.run_epoch(epoch, driver)
    assert len(records) == method.num_epochs() * STEPS // log_every
    return spy.sites, method.num_epochs()


@pytest.mark.parametrize("method_name", ["darts", "cpnas", "dcpnas"])
def test_a_round_reads_the_device_once_per_epoch_between_log_points(method_name):
    sites, epochs = one_round(method_name, log_every=1000)
    assert set(sites) <= ALLOWED, f"host reads outside the driver's read: {dict(sites)}"
    assert sum(sites.values()) == epochs            # the end of each epoch


def test_each_log_point_is_one_read():
    """The cadence: with a log point every step, one read per step and one at the epoch's end."""
    sites, epochs = one_round("darts", log_every=1)
    assert set(sites) <= ALLOWED, f"host reads outside the driver's read: {dict(sites)}"
    assert sum(sites.values()) == epochs * (STEPS + 1)


class _Batches(list):
    def set_epoch(self, epoch):
        pass


def test_the_guard_is_read_at_log_points_and_names_the_first_bad_step():
    """The cadence of the non-finite guard: checked on the device every step, read at the next log
    point (or the epoch's end); the error names the step where the loss first went bad."""
    from dcpnas.errors import NonFiniteLossError

    batches = _Batches([(torch.zeros(1), torch.zeros(1))] * 4)

    def run(losses, log_every):
        """(steps run, host reads, the error message)."""
        ran = []

        def step(xt, yt, xv, yv):
            ran.append(len(ran) + 1)
            return {"parent_CE": torch.tensor(losses[len(ran) - 1]), "parent_train_count": 1.0}

        driver = PhaseDriver(batches, batches, log_every=log_every, on_step=lambda rec: None)
        with HostReads() as spy, pytest.raises(NonFiniteLossError) as err:
            driver.run([step], data_epoch=0, where="here")
        return ran, sum(spy.sites.values()), str(err.value)

    ran, reads, msg = run([1.0, float("nan"), 1e9, 1.0], log_every=3)
    assert msg.startswith("parent_CE loss became nan at here, step 2;")
    assert ran == [1, 2, 3] and reads == 1             # stopped at the log point after step 3
    ran, reads, msg = run([1.0, 1.0, 1e9, 1.0], log_every=1000)
    assert msg.startswith("parent_CE loss diverged to 1e+09 (above 10000) at here, step 3;")
    assert ran == [1, 2, 3, 4] and reads == 1          # read at the epoch's end


def test_epoch_means_match_the_step_values():
    batches = _Batches([(torch.zeros(1), torch.zeros(1))] * 3)
    vals = iter([1.0, 2.0, 4.5])

    def step(xt, yt, xv, yv):
        v = next(vals)
        return {"G": torch.tensor(v, dtype=torch.float32), "child_correct": torch.tensor(v),
                "child_count": 5.0, "lr": 0.5}

    out = PhaseDriver(batches, batches).run([step], data_epoch=0, where="here")
    assert out["G"] == pytest.approx(7.5 / 3, rel=0, abs=0) and out["lr"] == 0.5
    assert out["child_acc"] == 7.5 / 15 and out["steps"] == 3
