"""Data: ``raw_data`` (read and validate clip folders), ``video_import``
(video files and label files -> the numbered layout), ``processed`` (the
saved ``DatasetDict``), ``checks`` (what ``quick_test.py`` checks),
``mini_data`` / ``single_image`` (the generated mini clip, the single-image
layout), ``synthetic`` / ``synthetic_hard`` / ``synthetic_physics``
(learnable synthetic clips: the easy set, the harder set, rigid bodies moved by
a physics engine) sharing ``synthetic_common``, ``sources`` (where a
trainer's samples come from), ``frame_samples`` (samples as tensors, the base
of ``edit_samples`` and ``video_samples``), ``transforms`` (one crop and flip
per sample), ``batches`` (the epoch batch sampler), ``latent_cache`` (VAE
latents on disk).

The package takes plain values (``SampleOptions``, ``DataSource``), never a
trainer's parsed flags; ``ip2p.training`` builds them."""
