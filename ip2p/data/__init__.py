"""Data: ``raw_data`` (read and validate clip folders), ``processed`` (the
saved ``DatasetDict``), ``checks`` (what ``quick_test.py`` checks),
``mini_data`` / ``synthetic`` / ``single_image`` (generated and single-image
layouts), ``sources`` (where a trainer's samples come from),
``edit_samples`` / ``video_samples`` (samples as tensors), ``transforms``
(one crop and flip per sample), ``batches`` (the epoch batch sampler),
``latent_cache`` (VAE latents on disk)."""
