"""Training data for the 20-frame model: rows of a processed dataset
(``input_frames`` paths, ``edit_prompt``, ``edited_image``) become the
frames' pixels, or their cached latents.

Frames are resized (short side) and centre-cropped to the resolution; a
random crop cannot be cached. With a random flip a flipped sample flips all 21 frames and mirrors its instruction ("left" <->
"right") so the text stays true.
"""

from ..shared.cli import UserError
from ..shared.images import Resolver
from .frame_samples import FrameSamples, SampleOptions


def frames_per_sample(split, frames_column: str, source: str) -> int:
    feature = split.features.get(frames_column)
    length = getattr(feature, "length", -1)
    if length is None or length < 1:
        length = len(split[0][frames_column]) if len(split) else 0
    if length < 1:
        raise UserError(f"{source}: column {frames_column!r} holds no frames; is this a make_dataset.py output?")
    return length


class VideoSamples(FrameSamples):
    """Clips of a processed dataset: ``input_frames`` paths, then ``edited_image``."""

    def __init__(self, split, resolve: Resolver, tokenizer, seed: int, options: SampleOptions,
                 frames_column: str = "input_frames", target_column: str = "edited_image"):
        self.frames_column, self.target_column = frames_column, target_column
        super().__init__(split, resolve, tokenizer, seed, options, image_columns=[target_column])
        self.num_frames = frames_per_sample(split, frames_column, "training data")

    def image_values(self, index: int) -> list:
        row = self.raw[index]
        return list(row[self.frames_column]) + [row[self.target_column]]
