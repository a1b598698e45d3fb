"""Text-instructed next-frame prediction with a widened InstructPix2Pix.

The top-level scripts are thin entry points; everything they share lives here,
one module per concern:

- ``cli``          argument parsing conventions and user-facing errors
- ``atomic_dir``   write an output folder completely or not at all
- ``raw_data``     read and validate raw clip folders (both layouts)
- ``processed``    the processed ``DatasetDict``: build, save, load, resolve paths
- ``mini_data``    generated clips for smoke tests
- ``single_image`` the single-image (imagefolder) layout
- ``hub``          model download through the Hugging Face hub or a mirror
- ``tiny_model``   a tiny, randomly initialised pipeline for offline use
- ``checks``       the checks behind ``quick_test.py``
- ``models``       channel facts and UNet input widening
- ``train_args``, ``training``, ``edit_data``, ``checkpoints``, ``run_logger``
                   the training engine both trainers share
- ``conditioning``, ``transforms``, ``latents``, ``latent_cache``
                   the pieces of a training step
- ``video_data``, ``video_pipeline``, ``strips``   the 20-frame model
- ``synthetic``, ``metrics``, ``evaluation``, ``vae_fit``   learnable clips and evaluation
"""

__version__ = "0.1.0"
