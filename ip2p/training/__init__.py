"""Training: ``args`` (the trainers' flags, declared once), ``setup`` (the
run resolved once: arguments, accelerator, precision, optimizer),
``trainer`` (``build_trainer`` and ``Trainer.run``), ``objectives`` (what is
denoised), ``image_task`` / ``video_task`` (the two trainers), and the
pieces: ``caches`` (the latent cache filled and the prompt table built before
training), ``conditioning``, ``speed``, ``cuda_graphs`` (``--cuda_graph_unet``), ``engines`` (what DeepSpeed needs
unlike DDP), ``checkpoints``, ``run_folder``
(which output folder a run may write into), ``run_logger``, ``saving``."""
