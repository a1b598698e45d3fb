# Point the Hugging Face libraries at a mirror for this shell.
#   source setup_mirror.sh                 # https://hf-mirror.com
#   source setup_mirror.sh https://my.mirror.example
# download_model.py, diffusers and transformers all read HF_ENDPOINT.
if [ "${BASH_SOURCE[0]}" = "$0" ]; then
    echo "setup_mirror.sh must be sourced to change your shell: source setup_mirror.sh [URL]" >&2
    exit 1
fi
export HF_ENDPOINT="${1:-https://hf-mirror.com}"
echo "HF_ENDPOINT=${HF_ENDPOINT}"
