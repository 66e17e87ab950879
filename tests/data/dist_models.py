"""Models for the distributed tests (tests/engine/test_distributed.py)."""
import torch
from torch import nn


def no_parameters():
    """Nothing to shard or reduce: FSDP/DDP must be refused."""
    return nn.Sequential(nn.ReLU(), nn.Flatten()), torch.zeros(1, 8)


def tiny_llama():
    """A tiny Hugging Face Llama built from a config (no download): 2 layers, width 64."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    torch.manual_seed(0)
    return LlamaForCausalLM(config), torch.zeros(1, 32, dtype=torch.long)


def tied_pair():
    """A column/row Linear pair whose first weight is tied to an embedding: tp must refuse to
    slice it (the embedding would be sliced with it)."""
    embedding = nn.Embedding(16, 8)
    up, down = nn.Linear(8, 16), nn.Linear(16, 8)
    up.weight = embedding.weight  # (16, 8) both
    return nn.Sequential(embedding, up, nn.ReLU(), down), torch.zeros(1, 4, dtype=torch.long)
