"""verify: a path that is not there is bad input (exit 2, one line), not a failed check (exit 1)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def test_verify_of_a_missing_path_exits_2_with_one_line(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "compressor.cli", "verify", "nothere"], cwd=tmp_path,
                          capture_output=True, text=True)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "package 'nothere' does not exist" in lines[0] and "Traceback" not in proc.stderr
