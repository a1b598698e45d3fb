"""The thin layer every stage uses: ``cli`` (argument conventions and
one-line ``UserError``s), ``atomic_dir`` (outputs written completely or not
at all), ``images`` (opening images, strips), ``metrics`` (PSNR / SSIM,
defined once)."""
