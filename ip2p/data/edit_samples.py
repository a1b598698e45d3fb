"""Single-image training samples: (input image, instruction) -> edited image,
the one-frame case of ``FrameSamples``. The single-image trainer crops at
random unless ``--center_crop``, as in the diffusers example."""

from ..shared.images import Resolver
from .frame_samples import FrameSamples, SampleOptions


class EditSamples(FrameSamples):
    """Rows of ``source_column`` (the input image), ``target_column`` (the edited image) and the options' prompt column."""

    def __init__(self, split, resolve: Resolver, tokenizer, seed: int, options: SampleOptions,
                 source_column: str = "input_image", target_column: str = "edited_image"):
        self.source_column, self.target_column = source_column, target_column
        super().__init__(split, resolve, tokenizer, seed, options, image_columns=[source_column, target_column])

    def image_values(self, index: int) -> list:
        row = self.raw[index]
        return [row[self.source_column], row[self.target_column]]
