"""The web demo behind ``demo.py`` (Gradio, optional: requirements-demo.txt).

Upload a video, or the observed frames as images, type an instruction, get
the predicted next frame and a rollout GIF (observed frames, then the
predicted ones in a red border).
"""

import atexit
import shutil
import tempfile
import time
from pathlib import Path
from typing import List, Optional, Sequence

from PIL import Image, ImageOps
import torch

from ..data.video_import import decode_frames
from ..shared.cli import UserError
from ..shared.video_files import rollout_frames, write_gif


MAX_UPLOAD = "100mb"  # per file, enforced by Gradio before the file reaches us
MAX_IMAGES_FACTOR = 4  # an upload of frames may hold at most this many times the frames the model observes
GIF_FOLDER_AGE_S = 600  # a request's GIF folder is deleted by the first request after this age (and all at exit)


def observed_frames(video: Optional[str], images: Optional[Sequence[str]], count: int, resolution: int) -> List[Image.Image]:
    """The last ``count`` frames of the uploaded video (only those are kept
    while decoding), or the uploaded images in file-name order (only the last
    ``count`` are opened), fitted to ``resolution``; a wrong upload is a UserError."""
    if video:
        try:
            frames = decode_frames(Path(video), max_side=4 * resolution, keep_last=count)
        except ValueError as err:
            raise UserError(f"the video {Path(video).name} {err}") from None
        source = f"the video has {len(frames)} frames"
    elif images:
        if len(images) > MAX_IMAGES_FACTOR * count:
            raise UserError(f"{len(images)} images were uploaded; upload the last {count} frames (at most {MAX_IMAGES_FACTOR * count})")
        try:
            frames = [Image.open(path).convert("RGB") for path in sorted(images, key=lambda p: Path(p).name)[-count:]]
        except OSError as err:
            raise UserError(f"an uploaded image cannot be read ({err}); upload JPEG or PNG frames") from None
        source = f"{len(frames)} images were uploaded"
    else:
        raise UserError(f"upload a video or the last {count} frames as images")
    if len(frames) < count:
        raise UserError(f"{source}; the model needs at least {count}")
    return [ImageOps.fit(frame, (resolution, resolution)) for frame in frames[-count:]]


def predict_upload(pipeline, video, images, instruction: str, future_frames: int, resolution: int, seed: int = 0):
    """(predicted next frame, rollout GIF path) for one upload."""
    if not instruction or not instruction.strip():
        raise UserError('type an instruction, e.g. "dropping a pen onto the table"')
    frames = observed_frames(video, images, pipeline.num_frames, resolution)
    generator = torch.Generator(device=pipeline.device).manual_seed(seed)
    predicted = pipeline.rollout(instruction.strip(), frames, max(1, int(future_frames)), generator=generator)
    gif = Path(tempfile.mkdtemp(prefix="request-", dir=gif_root())) / "rollout.gif"
    write_gif(rollout_frames(frames, predicted), gif, fps=6)
    return predicted[0], str(gif)


def gif_root() -> Path:
    """The demo's folder of per-request GIF folders: made once, removed at exit;
    each call deletes the request folders older than GIF_FOLDER_AGE_S (Gradio has copied them by then)."""
    global _GIF_ROOT
    if _GIF_ROOT is None:
        _GIF_ROOT = Path(tempfile.mkdtemp(prefix="ip2p-demo-"))
        atexit.register(shutil.rmtree, _GIF_ROOT, True)
    for folder in _GIF_ROOT.glob("request-*"):
        if time.time() - folder.stat().st_mtime > GIF_FOLDER_AGE_S:
            shutil.rmtree(folder, ignore_errors=True)
    return _GIF_ROOT


_GIF_ROOT: Optional[Path] = None


def build_demo(pipeline, resolution: int, max_future_frames: int = 16):
    """The Gradio app; its API endpoint is ``/predict`` (video, images, instruction, future frames)."""
    import gradio as gr  # in here: optional (requirements-demo.txt), only the demo needs it

    def run(video, images, instruction, future_frames):
        try:
            return predict_upload(pipeline, video, images, instruction, future_frames, resolution)
        except UserError as err:
            raise gr.Error(str(err)) from None

    # Gradio's own copies of uploads and outputs are deleted after GIF_FOLDER_AGE_S too.
    with gr.Blocks(title="Text-instructed next-frame prediction", delete_cache=(GIF_FOLDER_AGE_S, GIF_FOLDER_AGE_S)) as demo:
        gr.Markdown(f"Upload a video or the last {pipeline.num_frames} frames, write what happens, "
                    "and get the next frame and a rollout (predicted frames in red).")
        with gr.Row():
            with gr.Column():
                video = gr.File(label="video (.webm, .mp4, .avi)", file_types=[".webm", ".mp4", ".avi", ".mkv", ".mov"],
                                type="filepath")
                images = gr.File(label=f"or {pipeline.num_frames} frames", file_count="multiple", file_types=["image"],
                                 type="filepath")
                instruction = gr.Textbox(label="instruction", placeholder="dropping a pen onto the table")
                future = gr.Slider(1, max_future_frames, value=4, step=1, label="frames to predict")
                button = gr.Button("predict", variant="primary")
            with gr.Column():
                next_frame = gr.Image(label="predicted next frame", type="pil", format="png")
                rollout = gr.Image(label="rollout (GIF)", type="filepath")
        # One model on one device: requests wait in Gradio's queue instead of sampling side by side.
        button.click(run, inputs=[video, images, instruction, future], outputs=[next_frame, rollout], api_name="predict",
                     concurrency_limit=1)
    return demo
