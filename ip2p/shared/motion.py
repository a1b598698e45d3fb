"""Classical motion extrapolation, the reference a learned next-frame
predictor has to beat (docs/evaluation.md), and where motion is.

``flow_extrapolate``: dense optical flow between the last two observed
frames (OpenCV's Farneback), then the last frame warped one more step at
constant velocity. For every pixel ``p`` of the last frame the flow gives
where it was in the frame before, ``p + d(p)``; at constant velocity it will
be at ``p - d(p)`` next, so the next frame is the last one sampled at
``p + d(p)`` (a backward warp, with the velocity read at the target pixel:
exact for smooth motion, approximate at motion boundaries). Borders
replicate the nearest pixel.

``camera_extrapolate``: the last frame moved one more step with the
picture's dominant motion (the median flow vector): where what stands still
in the world will be when the camera keeps moving.

``moving_mask``: the pixels where the true next frame differs from the last
observed one by more than ``MOVING_THRESHOLD`` (of 255) in any channel:
where copying the last frame is wrong. Whole-frame PSNR is dominated by the
static background; PSNR over this mask measures the motion.
"""

from typing import List

import cv2
import numpy as np
from PIL import Image

MOVING_THRESHOLD = 10  # of 255: above JPEG noise on flat regions, below any visible motion


def farneback_flow(previous: np.ndarray, last: np.ndarray) -> np.ndarray:
    """``(H, W, 2)`` float32: for every pixel ``p`` of ``last`` (RGB uint8), the offset ``d(p)`` to where it was in ``previous``."""
    return cv2.calcOpticalFlowFarneback(cv2.cvtColor(last, cv2.COLOR_RGB2GRAY), cv2.cvtColor(previous, cv2.COLOR_RGB2GRAY),
                                        None, pyr_scale=0.5, levels=3, winsize=9, iterations=5, poly_n=5, poly_sigma=1.1,
                                        flags=0)


def warp_along(image: np.ndarray, flow: np.ndarray) -> Image.Image:
    """``image`` sampled at ``p + flow(p)`` (a backward warp; borders replicate the nearest pixel)."""
    height, width = flow.shape[:2]
    grid_x, grid_y = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    return Image.fromarray(cv2.remap(image, grid_x + flow[..., 0], grid_y + flow[..., 1], interpolation=cv2.INTER_LINEAR,
                                     borderMode=cv2.BORDER_REPLICATE))


def last_and_flow(frames: List[Image.Image]):
    """(the last frame as RGB uint8, ``farneback_flow`` from the frame before it): what both continuations start from."""
    previous, last = (np.asarray(frame.convert("RGB")) for frame in frames[-2:])
    return last, farneback_flow(previous, last)


def camera_flow(flow: np.ndarray) -> np.ndarray:
    """``flow`` replaced everywhere by its median vector: the motion of most of
    the picture, the background's when objects cover less than half of it."""
    shift = np.median(flow.reshape(-1, 2), axis=0).astype(np.float32)
    return np.broadcast_to(shift, flow.shape).copy()


def flow_extrapolate(frames: List[Image.Image]) -> Image.Image:
    """The frame after ``frames`` (oldest first, at least two), by constant-velocity flow from the last two."""
    last, flow = last_and_flow(frames)
    return warp_along(last, flow)


def camera_extrapolate(frames: List[Image.Image]) -> Image.Image:
    """The frame after ``frames`` if everything moved with the camera: the
    last frame shifted one more step by the median of the flow between the
    last two (``camera_flow``). Where an object stops, it stays put in the
    world, so it moves with the camera; with a still camera this is the last
    frame."""
    last, flow = last_and_flow(frames)
    return warp_along(last, camera_flow(flow))


def moving_mask(last: Image.Image, truth: Image.Image) -> np.ndarray:
    """``(H, W)`` booleans: where ``truth`` differs from ``last`` by more than ``MOVING_THRESHOLD`` in any channel."""
    difference = np.abs(np.asarray(truth.convert("RGB"), dtype=np.int16) - np.asarray(last.convert("RGB"), dtype=np.int16))
    return difference.max(axis=-1) > MOVING_THRESHOLD
