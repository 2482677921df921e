"""Shared utilities: atomic I/O (``io``), JSON-lines logs and rank-0 console (``logging``), progress display
(``progress``), distributed helpers, devices and seeding (``distributed``).

Import the submodules directly; this package imports nothing so that light callers do not pay for torch.
"""
