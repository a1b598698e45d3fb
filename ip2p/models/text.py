"""Instructions to CLIP token ids and embeddings, the one way every stage
(training data, the training loop, the pipeline) does it."""

from typing import List

import torch


def tokenize(tokenizer, prompts: List[str]) -> torch.Tensor:
    """``(len(prompts), model_max_length)`` ids, padded and truncated as SD's pipelines do."""
    return tokenizer(prompts, max_length=tokenizer.model_max_length, padding="max_length",
                     truncation=True, return_tensors="pt").input_ids


@torch.no_grad()
def encode_prompts(tokenizer, text_encoder, prompts: List[str], device) -> torch.Tensor:
    """The text encoder's last hidden states, the UNet's cross-attention input."""
    return text_encoder(tokenize(tokenizer, prompts).to(device))[0]
