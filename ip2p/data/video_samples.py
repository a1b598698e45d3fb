"""Training data for the 20-frame model: rows of a processed dataset
(``input_frames`` paths, ``edit_prompt``, ``edited_image``) become the
frames' pixels, or their cached latents.

Frames are resized (short side) and centre-cropped to the resolution; a
random crop (``--random_crop``) cannot be cached. With ``--random_flip`` a
flipped sample flips all 21 frames and mirrors its instruction ("left" <->
"right") so the text stays true.
"""

from ..shared.cli import UserError
from .frame_samples import FrameSamples


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

    def __init__(self, split, resolve, args, tokenizer, seed: int):
        self.frames_column, self.target_column = args.original_image_column, args.edited_image_column
        super().__init__(split, resolve, args, tokenizer, seed, image_columns=[self.target_column], random_crop=args.random_crop,
                         motion_prior=args.motion_prior)
        self.num_frames = frames_per_sample(split, self.frames_column, "training data")

    def image_values(self, index: int) -> list:
        row = self.raw[index]
        return list(row[self.frames_column]) + [row[self.target_column]]
