"""Suite-wide test settings.

One intra-op thread per test process: the suite runs under pytest-xdist (one worker per core) and
several tests spawn gloo process pairs, so more threads only oversubscribe the cores (measured:
a tiny supernet forward took 23 s with 2 threads under load against 0.3 s with 1).
"""

import torch

torch.set_num_threads(1)
