"""What a bug report needs to know about the machine and the installation (``dcpnas doctor``).

The CPU figures of this project depend on the oneDNN build and the ISA it dispatches to (AVX2 and
AVX-512 take different kernels, docs/METHOD.md#strided-pointwise-convolutions), so these come first.
"""

from __future__ import annotations

import os
import platform
import sys

__all__ = ["environment_report"]

#: Environment variables that change which kernels run or how many threads they use.
_ENV = ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "DCPNAS_MALLOC",
        "CUDA_VISIBLE_DEVICES", "ONEDNN_VERBOSE")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _onednn_version(torch) -> str:
    try:
        import re
        m = re.search(r"(?:oneDNN|MKL-DNN) v([\w.]+)(?: \(Git Hash (\w{7}))?", torch.__config__.show())
        return (m.group(1) + (f" ({m.group(2)})" if m.group(2) else "")) if m else "not reported"
    except Exception:  # noqa: BLE001 - a report never fails on one field
        return "not reported"


def environment_report() -> list[tuple[str, str]]:
    """(field, value) pairs, in the order ``dcpnas doctor`` prints them."""
    import torch

    from .. import __version__
    from ..kernels import fast_paths_enabled
    from .provenance import code_fingerprint

    rows = [("dcpnas", f"{__version__} (source {code_fingerprint()})"),
            ("python", f"{platform.python_version()} ({sys.executable})"),
            ("platform", platform.platform()),
            ("torch", torch.__version__),
            ("oneDNN", _onednn_version(torch) + (" (enabled)" if torch.backends.mkldnn.is_available()
                                                  else " (not available)")),
            ("cpu", _cpu_model()),
            ("cpu capability", torch.backends.cpu.get_cpu_capability()),
            ("cores (os)", str(os.cpu_count())),
            ("threads (torch)", f"{torch.get_num_threads()} intra-op, {torch.get_num_interop_threads()} inter-op"),
            ("cuda", torch.version.cuda or "not built"),
            ("cuda devices", ", ".join(f"{i}: {torch.cuda.get_device_name(i)}"
                                       for i in range(torch.cuda.device_count())) or "none"),
            ("memory format", "channels-last on CPU and CUDA (search and train option: channels_last)"),
            ("fast kernels", "on" if fast_paths_enabled() else "off"),
            ("malloc tuning", "off (DCPNAS_MALLOC=default)" if os.environ.get("DCPNAS_MALLOC") == "default"
             else "on (utils/allocator.py)")]
    rows += [(f"env {k}", os.environ[k]) for k in _ENV if k in os.environ]
    return rows
