"""Real-data tests skip with a reason when the course data is absent, and fail when CI requires it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parent
PROBE = "def test_reads_the_course_data(dlcv_root):\n    assert (dlcv_root / 'p1_data').is_dir()\n"


def run_probe(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    """Run one test that uses ``dlcv_root`` under a copy of this folder's conftest, ``FCNLAB_DATA`` empty."""
    folder = tmp_path / "suite"
    folder.mkdir()
    shutil.copy(TESTS / "conftest.py", folder / "conftest.py")
    (folder / "test_probe.py").write_text(PROBE)
    full = {**os.environ, "FCNLAB_DATA": str(tmp_path / "nothing"), **env}
    full.pop("PYTEST_ADDOPTS", None)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "test_probe.py"],
        cwd=folder,
        env=full,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.slow
def test_missing_data_skips_with_the_reason(tmp_path):
    done = run_probe(tmp_path, FCNLAB_REQUIRE_DATA="")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 skipped" in done.stdout
    assert f"real course data not found at {tmp_path / 'nothing' / 'dlcv'}" in done.stdout


@pytest.mark.slow
def test_missing_data_fails_when_required(tmp_path):
    done = run_probe(tmp_path, FCNLAB_REQUIRE_DATA="1")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "1 error" in done.stdout or "1 failed" in done.stdout
    assert "FCNLAB_REQUIRE_DATA is set, so real-data tests must run" in done.stdout
