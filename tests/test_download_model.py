"""download_model.py against a real Hugging Face mirror server (olah) on loopback."""

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from conftest import REPO, free_port, run_script, script_env
from ip2p.shared.atomic_dir import OWNER_FILE

REPO_ID = "mirror-org/tiny-ip2p"



def git(*args, cwd):
    subprocess.run(["git", "-c", "user.name=test", "-c", "user.email=test@localhost", *args], cwd=cwd, check=True, capture_output=True)


@pytest.fixture(scope="module")
def mirror(tmp_path_factory, tiny_model):
    """olah serving a local git repo that holds the tiny pipeline plus files
    that must never be fetched (pickled weights, a root-level checkpoint)."""
    work = tmp_path_factory.mktemp("mirror")
    repo = work / "mirrors/models" / REPO_ID
    shutil.copytree(tiny_model, repo)
    (repo / "unet/diffusion_pytorch_model.bin").write_bytes(b"pickled weights must not be fetched")
    (repo / "instruct-pix2pix-00-22000.ckpt").write_bytes(b"single-file checkpoint must not be fetched")
    (repo / "instruct-pix2pix-00-22000.safetensors").write_bytes(b"root-level single-file checkpoint")
    git("init", "-q", "-b", "main", cwd=repo)
    git("add", "-A", cwd=repo)
    git("commit", "-q", "-m", "tiny pipeline", cwd=repo)
    port = free_port()
    config = work / "olah.toml"
    config.write_text(
        f'[basic]\nhost = "127.0.0.1"\nport = {port}\nmirrors-path = ["{work / "mirrors"}"]\n'
        f'repos-path = "{work / "cache"}"\nmirror-netloc = "127.0.0.1:{port}"\nmirror-lfs-netloc = "127.0.0.1:{port}"\n'
        "[accessibility]\noffline = true\n"
    )
    server = subprocess.Popen([sys.executable, "-m", "olah.server", "-c", str(config), "--log-path", str(work / "logs")],
                              cwd=work, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while True:
        try:
            urllib.request.urlopen(f"{endpoint}/api/models/{REPO_ID}/revision/main", timeout=2)
            break
        except OSError:
            if time.time() > deadline or server.poll() is not None:
                server.kill()
                pytest.fail("olah mirror server did not start")
            time.sleep(0.5)
    yield endpoint, repo
    server.terminate()
    server.wait(timeout=10)


def weight_and_config_files(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and ".git" not in p.parts and ".cache" not in p.parts and p.name != OWNER_FILE}


def download(cwd, *args, **env):
    return run_script("download_model.py", "--repo-id", REPO_ID, "--local-dir", "model", *args, cwd=cwd, env=script_env(cwd, **env))


def test_download_through_mirror_fetches_exactly_the_safe_files(tmp_path, mirror, tiny_model):
    endpoint, _ = mirror
    done = download(tmp_path, "--endpoint", endpoint)
    assert done.returncode == 0, done.stderr
    assert "loads as StableDiffusionInstructPix2PixPipeline" in done.stdout
    assert weight_and_config_files(tmp_path / "model") == weight_and_config_files(tiny_model)


def test_second_run_does_nothing_and_a_lost_file_is_fetched_again(tmp_path, mirror):
    endpoint, _ = mirror
    assert download(tmp_path, "--endpoint", endpoint).returncode == 0
    model = tmp_path / "model"
    stamps = {p: p.stat().st_mtime_ns for p in model.rglob("*") if p.is_file() and ".cache" not in p.parts}
    time.sleep(0.05)
    assert download(tmp_path, "--endpoint", endpoint).returncode == 0
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps  # nothing re-downloaded or rewritten

    lost = model / "unet/diffusion_pytorch_model.safetensors"
    original = lost.read_bytes()
    lost.unlink()
    done = download(tmp_path, "--endpoint", endpoint)
    assert done.returncode == 0, done.stderr
    assert lost.read_bytes() == original
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items() if p != lost)


def test_hf_endpoint_variable_is_honoured(tmp_path, mirror):
    endpoint, _ = mirror
    done = download(tmp_path, HF_ENDPOINT=endpoint)
    assert done.returncode == 0, done.stderr
    assert f"from {endpoint}" in done.stdout


def test_unknown_repo_is_one_clear_line(tmp_path, mirror):
    endpoint, _ = mirror
    done = run_script("download_model.py", "--repo-id", "nobody/nothing", "--endpoint", endpoint, cwd=tmp_path)
    assert done.returncode != 0 and "nobody/nothing not found at" in done.stderr and "Traceback" not in done.stderr


def test_dead_endpoint_fails_fast_naming_endpoint_and_remedy(tmp_path):
    endpoint = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    started = time.time()
    done = download(tmp_path, "--endpoint", endpoint)
    assert time.time() - started < 30
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert f"cannot reach {endpoint}" in done.stderr and "setup_mirror.sh" in done.stderr
    assert not (tmp_path / "model").exists()


def test_silent_endpoint_times_out_within_the_limit(tmp_path):
    """A server that accepts connections and never answers (a black-holed mirror)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    accepted = []
    stop = threading.Event()

    def accept_and_ignore():
        listener.settimeout(0.2)
        while not stop.is_set():
            try:
                accepted.append(listener.accept()[0])
            except OSError:
                pass

    thread = threading.Thread(target=accept_and_ignore, daemon=True)
    thread.start()
    try:
        endpoint = f"http://127.0.0.1:{listener.getsockname()[1]}"
        started = time.time()
        done = download(tmp_path, "--endpoint", endpoint, "--timeout", 2)
        elapsed = time.time() - started
    finally:
        stop.set()
        thread.join()
        for conn in accepted:
            conn.close()
        listener.close()
    assert done.returncode != 0 and f"cannot reach {endpoint} within 2 s" in done.stderr
    assert elapsed < 25


@pytest.mark.parametrize("argument, expected", [(None, "https://hf-mirror.com"), ("http://127.0.0.1:9/", "http://127.0.0.1:9/")])
def test_setup_mirror_sets_hf_endpoint_when_sourced(argument, expected):
    command = f'source "{REPO / "setup_mirror.sh"}" {argument or ""} >/dev/null && printf %s "$HF_ENDPOINT"'
    done = subprocess.run(["bash", "-c", command], capture_output=True, text=True, env={k: v for k, v in os.environ.items() if k != "HF_ENDPOINT"})
    assert done.returncode == 0 and done.stdout == expected


def test_setup_mirror_says_it_must_be_sourced():
    done = subprocess.run(["bash", str(REPO / "setup_mirror.sh")], capture_output=True, text=True)
    assert done.returncode != 0 and "must be sourced" in done.stderr
