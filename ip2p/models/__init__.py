"""Models: ``widening`` (channel facts, UNet input widening), ``files``
(is a folder a complete pipeline), ``hub`` (download through the hub or a
mirror), ``tiny_model`` and ``vae_fit`` (the offline test model),
``loading`` (the components a trainer fine-tunes), ``text`` (tokenizing and
prompt encoding), ``latents`` (VAE moments), ``video_pipeline`` (next-frame
prediction), ``samplers`` (the saved sampler and ``--sampler``)."""
