"""The code fingerprint a run records: a function of the package's Python sources only."""

from __future__ import annotations

import hashlib

from dcpnas.utils.provenance import code_fingerprint


def test_fingerprint_is_sha256_of_sorted_paths_and_bytes(tmp_path):
    (tmp_path / "b.py").write_text("x = 1\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.py").write_text("y = 2\n")
    (tmp_path / "notes.txt").write_text("not source")
    expected = hashlib.sha256(b"b.py\0x = 1\n\0sub/a.py\0y = 2\n\0").hexdigest()[:16]
    assert code_fingerprint(tmp_path) == expected
    code_fingerprint.cache_clear()
    (tmp_path / "notes.txt").write_text("changed, still not source")
    assert code_fingerprint(tmp_path) == expected
    code_fingerprint.cache_clear()
    (tmp_path / "sub" / "a.py").write_text("y = 3\n")
    assert code_fingerprint(tmp_path) != expected


def test_package_fingerprint_is_recorded_in_run_markers(tmp_path):
    import json

    from dcpnas.utils.rundir import MARKER, claim_run_dir

    with claim_run_dir(tmp_path / "run", "search") as run:
        pass
    assert json.loads((run.path / MARKER).read_text())["code"] == code_fingerprint()
