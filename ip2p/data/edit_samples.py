"""Single-image training samples: (input image, instruction) -> edited image,
the one-frame case of ``FrameSamples``. Crops are random unless
``--center_crop``, as in the diffusers example."""

from ..shared.images import Resolver
from .frame_samples import FrameSamples


class EditSamples(FrameSamples):
    def __init__(self, split, resolve: Resolver, args, tokenizer, seed: int):
        self.source_column, self.target_column = args.original_image_column, args.edited_image_column
        super().__init__(split, resolve, args, tokenizer, seed, image_columns=[self.source_column, self.target_column],
                         random_crop=not args.center_crop)

    def image_values(self, index: int) -> list:
        row = self.raw[index]
        return [row[self.source_column], row[self.target_column]]
