"""Suite-wide test settings.

One intra-op thread per test process: the suite runs under pytest-xdist (one worker per core) and
several tests spawn gloo process pairs, so more threads only oversubscribe the cores (a tiny supernet
forward is then many times slower).
"""

import torch

torch.set_num_threads(1)


import numpy as np  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for the modules that use it (``pytestmark``), whatever an earlier test in
    the process set; the previous count is restored afterwards."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def tiny_npz(tmp_path_factory):
    """Real Fashion-MNIST images (the embedded subset) average-pooled to 8×8, as an ``npz:`` dataset:
    200 train / 20 test images, small enough for end-to-end search and training runs in seconds."""
    from dcpnas.data import load_embedded

    ds = load_embedded()

    def down(x):
        return torch.nn.functional.adaptive_avg_pool2d(x.float(), 8).round().to(torch.uint8)[:, 0].numpy()

    path = tmp_path_factory.mktemp("data") / "fmnist8.npz"
    np.savez(path, x_train=down(ds.x_train[:200]), y_train=ds.y_train[:200].numpy(),
             x_test=down(ds.x_test[:20]), y_test=ds.y_test[:20].numpy())
    return path
