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


def package_import_graph() -> dict:
    """Module name -> the ``ip2p`` modules it imports anywhere in its body (in functions too)."""
    modules = {}
    for path in sorted((REPO / "ip2p").rglob("*.py")):
        parts = path.relative_to(REPO).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    graph = {}
    for name, path in modules.items():
        package = name if path.stem == "__init__" else name.rsplit(".", 1)[0]
        targets = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + ([node.module] if node.module else []))
                # "from . import x" names a module x; "from .m import f" names module m.
                targets |= {f"{base}.{a.name}" for a in node.names if f"{base}.{a.name}" in modules} or {base}
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                targets |= {n for n in names if n in modules}
        graph[name] = {t for t in targets if t in modules and t != name and not name.startswith(t + ".")}
    return graph


def test_package_modules_import_each_other_in_one_direction_only():
    graph = package_import_graph()
    assert graph["ip2p.data.synthetic"] >= {"ip2p.data.synthetic_hard", "ip2p.data.synthetic_common"}  # the walk sees imports
    cycles = []
    for start in graph:
        stack = [(start, [start])]
        while stack:
            node, path = stack.pop()
            for target in graph[node]:
                if target == start:
                    cycles.append(" -> ".join(path + [start]))
                elif target not in path and target > start:  # each cycle once, from its smallest module
                    stack.append((target, path + [target]))
    assert cycles == []


def test_data_package_takes_plain_values_not_the_trainers_flags():
    """The data layer's interface is its own arguments: no argparse, no ``args`` parameter, no ``args.x`` read."""
    coupled = []
    for path in sorted((REPO / "ip2p/data").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.Import, ast.ImportFrom)) and "argparse" in [a.name for a in node.names] + [getattr(node, "module", "")]:
                coupled.append(f"{path.name} imports argparse")
            elif isinstance(node, ast.arg) and node.arg == "args":
                coupled.append(f"{path.name}:{node.lineno} takes an 'args' parameter")
            elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "args":
                coupled.append(f"{path.name}:{node.lineno} reads args.{node.attr}")
    assert coupled == []


def test_no_package_benchmark_or_test_imports_a_top_level_script():
    scripts = {path.stem for path in REPO.glob("*.py")}
    offenders = []
    for folder in ("ip2p", "benchmarks", "tests"):
        for path in sorted((REPO / folder).rglob("*.py")):
            package = ".".join(path.relative_to(REPO).parent.parts)
            offenders += [f"{path.relative_to(REPO)} imports {name}" for name in imported_modules(path, package)
                          if name.split(".")[0] in scripts]
    assert offenders == []


def test_design_doc_layout_lists_every_package_module():
    design = (REPO / "docs/design.md").read_text(encoding="utf-8")
    layout = design.split("## Repository layout", 1)[1].split("```")[1]
    package_part = layout.split("\n*.py", 1)[0]
    name_columns = [re.split(r"\s{2,}", line.strip())[0] for line in package_part.splitlines() if line.strip()]
    listed = {name for column in name_columns for name in re.findall(r"\b(\w+\.py)\b", column)}
    modules = {path.name for path in (REPO / "ip2p").rglob("*.py") if path.name != "__init__.py"}
    assert listed == modules
    folders = {path.name for path in (REPO / "ip2p").iterdir() if (path / "__init__.py").is_file()}
    assert folders == set(re.findall(r"^  (\w+)/", package_part, re.MULTILINE))


def test_each_package_docstring_names_every_module_of_its_package():
    missing = []
    for init in sorted((REPO / "ip2p").glob("*/__init__.py")):
        docstring = ast.get_docstring(ast.parse(init.read_text(encoding="utf-8"))) or ""
        named = set(re.findall(r"``(\w+)``", docstring))
        missing += [f"{init.parent.name}.{path.stem}" for path in sorted(init.parent.glob("*.py"))
                    if path.stem != "__init__" and path.stem not in named]
    assert missing == []


def test_readme_stays_a_front_door_and_its_links_resolve():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 300
    for page in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        text = page.read_text(encoding="utf-8")
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", text):
            assert (page.parent / target).exists(), f"{page.relative_to(REPO)} links to missing {target}"
