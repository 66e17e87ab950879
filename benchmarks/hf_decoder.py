"""A Hugging Face-style decoder for benchmarks/gpu_accuracy.py: GPT-2's architecture from a
config (no download), small enough for a quick step; token ids in, logits out."""
import torch


def build():
    from transformers import GPT2Config, GPT2LMHeadModel

    config = GPT2Config(n_layer=4, n_head=8, n_embd=512, n_positions=512, vocab_size=32000, bos_token_id=0,
                        eos_token_id=0)
    return GPT2LMHeadModel(config), torch.zeros(1, 256, dtype=torch.long)
