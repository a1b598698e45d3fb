"""demo.py: the Gradio demo served on loopback, driven by Gradio's Python client."""

import subprocess
import sys
import time
import urllib.request

import pytest
from PIL import Image

from conftest import REPO, free_port, script_env, write_clip
from test_import_videos import write_video


def test_demo_predicts_from_a_video_or_frames_over_http(tmp_path, video_model):
    from gradio_client import Client, handle_file

    write_video(tmp_path / "clip.mp4", 24, codec="libx264")
    write_clip(tmp_path / "frames", num_frames=20)
    port = free_port()
    server = subprocess.Popen([sys.executable, str(REPO / "demo.py"), "--model", str(video_model), "--resolution", "32",
                               "--port", str(port)], cwd=tmp_path, env=script_env(tmp_path, GRADIO_ANALYTICS_ENABLED="False"),
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        url = f"http://127.0.0.1:{port}/"
        for _ in range(180):
            if server.poll() is not None:
                pytest.fail(f"demo.py exited: {server.stdout.read()[-3000:]}")
            try:
                urllib.request.urlopen(url, timeout=1)
                break
            except OSError:
                time.sleep(0.5)
        client = Client(url, verbose=False)
        frame, gif = client.predict(handle_file(str(tmp_path / "clip.mp4")), None, "move it", 3, api_name="/predict")
        assert Image.open(frame).size == (32, 32)
        assert Image.open(gif).n_frames == 23  # the last 20 frames of the video, then 3 predicted
        frames = [handle_file(str(path)) for path in sorted((tmp_path / "frames").glob("*.jpg"))]
        frame, gif = client.predict(None, frames, "move it", 1, api_name="/predict")
        assert Image.open(frame).size == (32, 32) and Image.open(gif).n_frames == 21
        with pytest.raises(Exception, match="upload a video or the last 20 frames"):
            client.predict(None, None, "move it", 1, api_name="/predict")
        with pytest.raises(Exception, match="5 images were uploaded; the model needs at least 20"):
            client.predict(None, frames[:5], "move it", 1, api_name="/predict")
    finally:
        server.terminate()
        server.wait(timeout=30)

