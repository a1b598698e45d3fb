"""Whole-repository promises: the README's main command (a 5-step training
run) works from a clean copy, and nothing imports torchvision (it has no working CPU build here)."""

import ast
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from PIL import Image

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
    # The 20-frame path ends in a rollout of a held-out clip.
    assert "test_output_video/rollout/rollout.gif" in done.stdout
    assert Image.open(copy / "test_output_video/rollout/rollout.gif").n_frames == 24
    assert (copy / "test_output_video/rollout/strip.png").is_file() and (copy / "test_output_video/rollout/rollout.mp4").is_file()


# The package's stages, lowest first: a module may import its own stage and the ones below it.
STAGE_RANK = {"shared": 0, "models": 1, "data": 2, "training": 3, "evaluation": 3}


def imported_modules(path: Path, package: str) -> list:
    """Absolute names of the modules ``path`` imports (relative imports resolved against ``package``)."""
    names = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            names.append(".".join(base + ([node.module] if node.module else [])))
    return names


def test_package_imports_point_down_the_stages():
    wrong = []
    for path in sorted((REPO / "ip2p").rglob("*.py")):
        parts = path.relative_to(REPO).with_suffix("").parts
        if len(parts) < 3:
            continue  # ip2p/__init__.py
        stage, package = parts[1], ".".join(parts[:-1]) if parts[-1] != "__init__" else ".".join(parts)
        for name in imported_modules(path, package):
            target = name.split(".")
            if target[0] != "ip2p" or len(target) < 2 or target[1] == stage:
                continue
            if STAGE_RANK[target[1]] >= STAGE_RANK[stage]:
                wrong.append(f"{path.relative_to(REPO)} imports {name}")
    assert wrong == []
    assert set(STAGE_RANK) == {p.name for p in (REPO / "ip2p").iterdir() if (p / "__init__.py").is_file()}


def test_no_package_benchmark_or_test_imports_a_top_level_script():
    scripts = {path.stem for path in REPO.glob("*.py")}
    offenders = []
    for folder in ("ip2p", "benchmarks", "tests"):
        for path in sorted((REPO / folder).rglob("*.py")):
            package = ".".join(path.relative_to(REPO).parent.parts)
            offenders += [f"{path.relative_to(REPO)} imports {name}" for name in imported_modules(path, package)
                          if name.split(".")[0] in scripts]
    assert offenders == []


def test_readme_layout_lists_every_package_module():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    layout = readme.split("## Repository layout", 1)[1].split("```")[1]
    package_part = layout.split("\n*.py", 1)[0]
    name_columns = [re.split(r"\s{2,}", line.strip())[0] for line in package_part.splitlines() if line.strip()]
    listed = {name for column in name_columns for name in re.findall(r"\b(\w+\.py)\b", column)}
    modules = {path.name for path in (REPO / "ip2p").rglob("*.py") if path.name != "__init__.py"}
    assert listed == modules
    folders = {path.name for path in (REPO / "ip2p").iterdir() if (path / "__init__.py").is_file()}
    assert folders == set(re.findall(r"^  (\w+)/", package_part, re.MULTILINE))
