"""benchmarks/crash_harness.py (issue 27) in small: SIGKILL at seeded random
moments, then the earlier output must be whole and the next run must clean up.
The full harness (20 points per tool, training included) is a benchmark run."""

import json
import subprocess
import sys

from conftest import REPO, script_env


def test_make_dataset_killed_at_random_moments_leaves_a_whole_output(tmp_path):
    done = subprocess.run([sys.executable, str(REPO / "benchmarks/crash_harness.py"), "--points", "3", "--tools", "make_dataset",
                           "--json", str(tmp_path / "counts.json")],
                          cwd=tmp_path, env=script_env(tmp_path), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    (result,) = json.loads((tmp_path / "counts.json").read_text())
    assert result["points"] == 3 and result["intact"] == 3 and result["leftovers"] == []
