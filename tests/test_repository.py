"""Whole-repository promises: the README's main command (a 5-step training
run) works from a clean copy, and nothing imports torchvision (it has no working CPU build here)."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from conftest import REPO


def test_no_module_imports_torchvision():
    offenders = []
    for path in REPO.rglob("*.py"):
        if any(part.startswith(".") or part in {"venv", "env"} for part in path.relative_to(REPO).parts):
            continue
        if re.search(r"^\s*(import|from)\s+torchvision\b", path.read_text(encoding="utf-8"), re.MULTILINE):
            offenders.append(str(path.relative_to(REPO)))
    assert offenders == []


def test_readme_main_command_runs_from_a_clean_copy(tmp_path):
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    commands = re.findall(r"^(bash \S+\.sh)\s", readme, re.MULTILINE)
    assert commands[:2] == ["bash test_training.sh", "bash run_tests.sh"]
    assert "bash run_tests.sh" in (REPO / ".ci/run").read_text()

    copy = tmp_path / "checkout"
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True).stdout.split()
    names = tracked or [p.relative_to(REPO).as_posix() for p in REPO.rglob("*") if p.is_file() and ".venv" not in p.parts]
    for name in names:
        if (REPO / name).is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, copy / name)
    # Reuse the interpreter running the tests instead of building a second virtualenv.
    env = dict(os.environ, IP2P_VENV=sys.prefix, HF_HOME=str(tmp_path / "hf"), HF_DATASETS_CACHE=str(tmp_path / "hfd"))
    done = subprocess.run(["bash", "test_training.sh"], cwd=copy, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert "all checks passed" in done.stdout and "using the tiny offline model" in done.stdout
    assert (copy / "processed_dataset_seq/dataset_dict.json").is_file()
    assert (copy / "dataset_mini/test_data/metadata.jsonl").is_file()
    assert (copy / "test_output/checkpoint-5/training_state.json").is_file()
    assert (copy / "test_output/unet/diffusion_pytorch_model.safetensors").is_file()
    assert list((copy / "test_output/validation").rglob("*.png"))
