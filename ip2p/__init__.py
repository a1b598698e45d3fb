"""Text-instructed next-frame prediction with a widened InstructPix2Pix.

The top-level scripts are thin entry points; everything they share lives in
this package, grouped by stage. Imports point one way, down this list (a
test checks it):

- ``training``, ``evaluation``  the two jobs; neither imports the other
- ``data``                      raw clips, the processed dataset, training samples, the latent cache
- ``models``                    model folders, loading, widening, the VAE's latents, the video pipeline
- ``shared``                    user-facing errors, atomic output folders, images, metrics

``data`` sits above ``models`` because filling the latent cache encodes
frames with the VAE; no model code reads data.
"""

__version__ = "0.2.0"
