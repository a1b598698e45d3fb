"""The thin layer every stage uses: ``cli`` (argument conventions and
one-line ``UserError``s), ``atomic_dir`` (outputs written completely or not
at all, replacing only the same tool's own), ``images`` (opening images,
strips), ``metrics`` (PSNR / SSIM / moving-region PSNR, defined once),
``motion`` (optical-flow extrapolation, the moving-pixel mask) and
``video_files`` (a rollout as GIF and MP4)."""
