"""Shared utilities, one module per concern, used by search and training alike: atomic files and checkpoint
loading (``io``), run-directory ownership (``rundir``), run state across a resume (``runstate``), the
non-finite guard (``finite``), bounded reads of user files (``bounded``), JSON-lines logs and the rank-0
console (``logging``), progress display (``progress``), glibc malloc settings (``allocator``), submodules found once per network (``modules``), devices, seeding, collectives and the BN-sync policy
(``distributed``).

Import the submodules directly; this package imports nothing so that light callers do not pay for torch.
"""
