"""Model download through the Hugging Face hub or a mirror of it.

Only configs, tokenizer files and safetensors weights are fetched (never
pickled ``.bin``/``.ckpt`` files, never the root-level single-file checkpoint).
``huggingface_hub.snapshot_download`` into a local folder skips files that are
already complete and resumes partial ones, so re-running the same command is
how an interrupted download is finished.
"""

import os
from pathlib import Path
from typing import List, Optional, Tuple

from huggingface_hub import HfApi, snapshot_download
from huggingface_hub.errors import GatedRepoError, HfHubHTTPError, RepositoryNotFoundError, RevisionNotFoundError
from huggingface_hub.utils import httpx as hub_httpx

from .files import pipeline_folder_problems
from ..shared.cli import UserError

DEFAULT_REPO_ID = "timbrooks/instruct-pix2pix"
DEFAULT_ENDPOINT = "https://huggingface.co"
MIRROR_REMEDY = "if huggingface.co is blocked, `source setup_mirror.sh` (https://hf-mirror.com) or pass --endpoint URL"
KNOWN_VARIANTS = ("fp16", "bf16", "ema", "non_ema")


def resolve_endpoint(endpoint: Optional[str]) -> str:
    """--endpoint, else $HF_ENDPOINT (what setup_mirror.sh sets), else huggingface.co."""
    return (endpoint or os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).rstrip("/")


def file_patterns(variant: Optional[str]) -> Tuple[List[str], List[str]]:
    """(allow, ignore) patterns: component configs, tokenizer files and the
    safetensors weights of the requested variant (the plain ones by default)."""
    allow = ["model_index.json", "*/*.json", "*/*.txt"]
    if variant:
        return allow + [f"*/*.{variant}.safetensors"], []
    return allow + ["*/*.safetensors"], [f"*.{v}.safetensors" for v in KNOWN_VARIANTS]


def _transport_error() -> type:
    # huggingface_hub exposes the HTTP client it really uses (httpx, or its
    # fork httpx2 in 2.x) under this name; catching plain httpx would miss it.

    return hub_httpx.TransportError


def check_endpoint(endpoint: str, repo_id: str, revision: str, timeout_s: float) -> None:
    """Fail within ``timeout_s`` with one clear line when the repo cannot be reached."""
    try:
        HfApi(endpoint=endpoint).model_info(repo_id, revision=revision, timeout=timeout_s)
    except GatedRepoError:
        raise UserError(f"{repo_id} at {endpoint} is gated: accept its licence on the website and set HF_TOKEN") from None
    except RevisionNotFoundError:
        raise UserError(f"revision '{revision}' of {repo_id} does not exist at {endpoint}; check --revision") from None
    except RepositoryNotFoundError:
        raise UserError(f"{repo_id} not found at {endpoint} (private? set HF_TOKEN); check --repo-id") from None
    except (_transport_error(), OSError) as err:
        raise UserError(f"cannot reach {endpoint} within {timeout_s:g} s ({type(err).__name__}); {MIRROR_REMEDY}") from None
    except HfHubHTTPError as err:
        status = err.response.status_code if err.response is not None else "?"
        raise UserError(f"{endpoint} answered HTTP {status} for {repo_id}; {MIRROR_REMEDY}") from None


def download_pipeline(repo_id: str, local_dir: Path, endpoint: str, revision: str, variant: Optional[str], timeout_s: float) -> Path:
    """Fetch (or finish fetching) the pipeline into ``local_dir``."""
    check_endpoint(endpoint, repo_id, revision, timeout_s)
    allow, ignore = file_patterns(variant)
    try:
        snapshot_download(
            repo_id, revision=revision, local_dir=str(local_dir), endpoint=endpoint,
            allow_patterns=allow, ignore_patterns=ignore or None, etag_timeout=timeout_s,
        )
    except (_transport_error(), OSError) as err:
        raise UserError(
            f"download from {endpoint} broke off ({type(err).__name__}: {err}); "
            "re-run the same command to resume where it stopped"
        ) from None
    return Path(local_dir)


def verify_pipeline(model_dir: Path, variant: Optional[str] = None) -> str:
    """Load the folder as an InstructPix2Pix pipeline; return a one-line summary."""
    import torch  # in here: download_model.py --help must not wait for torch and diffusers
    from diffusers import StableDiffusionInstructPix2PixPipeline

    problems = pipeline_folder_problems(model_dir)
    if problems:
        raise UserError(f"{problems[0]} ({len(problems)} problem(s) in {model_dir}); re-run the download to complete it")
    try:
        pipeline = StableDiffusionInstructPix2PixPipeline.from_pretrained(
            str(model_dir), use_safetensors=True, variant=variant, dtype=torch.float32,
        )
    except Exception as err:  # diffusers raises many types for broken folders
        raise UserError(f"{model_dir} does not load as a pipeline ({type(err).__name__}: {err}); re-run the download") from None
    unet_params = sum(p.numel() for p in pipeline.unet.parameters())
    return f"{model_dir}: loads as {type(pipeline).__name__}; unet {unet_params / 1e6:.1f}M parameters, in_channels {pipeline.unet.config.in_channels}"
