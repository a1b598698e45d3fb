"""One object for everything a run reports: scalars and images go to every
tracker accelerate was given (TensorBoard, wandb) and images also to PNG
files, so call sites never ask which trackers are on."""

from pathlib import Path
from typing import Dict, List

import numpy as np
from PIL import Image


class RunLogger:
    def __init__(self, accelerator, output_dir: Path):
        self.accelerator = accelerator
        self.output_dir = Path(output_dir)

    def scalars(self, values: Dict[str, float], step: int) -> None:
        self.accelerator.log(values, step=step)

    def images(self, tag: str, images: List[Image.Image], step: int) -> Path:
        """Log on the main process; returns the folder the PNGs went to."""
        folder = self.output_dir / "validation" / f"step-{step:06d}"
        if not self.accelerator.is_main_process:
            return folder
        folder.mkdir(parents=True, exist_ok=True)
        for index, image in enumerate(images):
            image.save(folder / f"{tag}-{index}.png")
        for tracker in self.accelerator.trackers:
            if tracker.name == "tensorboard":
                stacked = np.stack([np.asarray(image.convert("RGB")) for image in images])
                tracker.writer.add_images(tag, stacked, step, dataformats="NHWC")
            elif tracker.name == "wandb":
                import wandb  # in here: only --report_to wandb needs it, and it is slow to import

                tracker.log({tag: [wandb.Image(image) for image in images]}, step=step)
        return folder
