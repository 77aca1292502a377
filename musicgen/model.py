"""A small pre-norm decoder-only Transformer with rotary positions, its loss and a KV cache.

Rotary embeddings make attention depend only on the distance between tokens, so generation can
slide a window past the training context (see generate.py). Decoding has gpt-fast's shape:
`prefill()` a prompt into a KVCache, then one `decode_step()` per token with positions as
tensors. The cache is a plain object created per request: the model holds no request state.
"""

from __future__ import annotations

import copy
import math
from dataclasses import asdict, dataclass, replace

import torch
import torch.nn as nn
import torch.nn.functional as F

from .errors import CheckpointError, InvalidParameterError

IGNORE = -100  # target value the loss skips (padding)
# Settings of the two-level experiment, retired (docs/two-level.md): configs saved while it
# existed hold them. A token model's are dropped on loading; a two-level model is refused.
RETIRED_SETTINGS = ("representation", "field_layers", "field_decoder")


@dataclass(frozen=True)
class ModelConfig:
    """The architecture; its defaults are the trainer's (`train --n-layer` etc.).

    vocab_size is None until the tokenizer is known: a training config holds an architecture
    before its data is read, and the trainer fills the size in (`with_vocab`)."""

    vocab_size: int | None = None
    block_size: int = 512  # training context, in tokens
    n_layer: int = 6
    n_head: int = 4
    n_embd: int = 256
    dropout: float = 0.0  # about one epoch on CPU: nothing to regularise yet
    rope_base: float = 10_000.0

    def __post_init__(self):
        if self.vocab_size is not None and self.vocab_size < 2:
            raise InvalidParameterError("vocab_size must be at least 2")
        for name in ("block_size", "n_layer", "n_head", "n_embd"):
            if getattr(self, name) < 1:
                raise InvalidParameterError(f"{name} must be at least 1")
        if self.n_embd % self.n_head or (self.n_embd // self.n_head) % 2:
            raise InvalidParameterError("n_embd / n_head must be an even integer (for RoPE)")
        if not 0.0 <= self.dropout < 1.0:
            raise InvalidParameterError("dropout must be in [0, 1)")

    def with_vocab(self, vocab_size: int) -> ModelConfig:
        return replace(self, vocab_size=vocab_size)

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, saved: dict) -> ModelConfig:
        """A saved config (RETIRED_SETTINGS: see there)."""
        if saved.get("representation", "tokens") != "tokens":
            raise CheckpointError(
                "This checkpoint is a two-level model (representation "
                f"'{saved['representation']}'), an experiment that was retired: "
                "docs/two-level.md names the last commit that can load it."
            )
        return cls(**{k: v for k, v in saved.items() if k not in RETIRED_SETTINGS})


class KVCache:
    """Keys and values of every layer, (n_layer, B, n_head, max_len, head_dim), per request.

    `update` writes new keys/values at their positions and returns what attention reads. A
    static cache returns the whole buffer (shapes never change, so a compiled or CUDA-graph step
    can be replayed; a mask hides the empty slots); a dynamic one returns only the filled part,
    which is cheaper in eager mode on a CPU, where attending over empty slots costs real time.
    """

    def __init__(self, config: ModelConfig, batch: int, max_len: int, device, dtype, static=False):
        shape = (config.n_layer, batch, config.n_head, max_len, config.head_dim)
        self.k = torch.zeros(shape, device=device, dtype=dtype)
        self.v = torch.zeros(shape, device=device, dtype=dtype)
        self.max_len, self.static = max_len, static
        # causal[p] is the row of slots position p may attend to (static caches only)
        self.causal = (
            torch.ones(max_len, max_len, dtype=torch.bool, device=device).tril() if static else None
        )

    def repeat(self, batch: int) -> KVCache:
        """A cache of `batch` rows, each a copy of this one-row cache."""
        out = copy.copy(self)
        out.k, out.v = self.k.repeat(1, batch, 1, 1, 1), self.v.repeat(1, batch, 1, 1, 1)
        return out

    def update(self, layer: int, positions: torch.Tensor, k: torch.Tensor, v: torch.Tensor):
        """Write k, v (B, H, T, hd) at `positions` (T,); return the keys and values to attend."""
        # (under autocast the projections come in a lower precision: the cache keeps its own)
        self.k[layer].index_copy_(2, positions, k.to(self.k.dtype))
        self.v[layer].index_copy_(2, positions, v.to(self.v.dtype))
        if self.static:
            return self.k[layer], self.v[layer]
        end = int(positions[-1]) + 1  # a host tensor on the CPU: no device synchronisation
        return self.k[layer, :, :, :end], self.v[layer, :, :, :end]

    def mask(self, positions: torch.Tensor) -> torch.Tensor | None:
        """The attention mask for queries at `positions`: None means causal over what update
        returned (dynamic cache: a prefill from 0 or a single new token); a chunk of several
        tokens after cached ones sees every cached slot, and the chunk causally."""
        if self.static:
            return self.causal[positions]
        if len(positions) > 1 and int(positions[0]) > 0:
            slots = torch.arange(int(positions[-1]) + 1, device=positions.device)
            return slots[None, :] <= positions[:, None]
        return None


def rope_frequencies(head_dim: int, base: float) -> torch.Tensor:
    """The rotation speed (radians per position) of each of the head's hd/2 pairs."""
    return 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))


def rope_tables(head_dim: int, length: int, base: float) -> tuple[torch.Tensor, torch.Tensor]:
    angles = torch.outer(
        torch.arange(length, dtype=torch.float32), rope_frequencies(head_dim, base)
    )
    return angles.cos(), angles.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    # x: (..., T, hd); rotate pairs (first half, second half) as in GPT-NeoX
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat((x1 * cos - x2 * sin, x1 * sin + x2 * cos), dim=-1)


# The blocks call F.* on their parameters and each other's .forward() directly: at batch 1 on a
# CPU a decoding step is a few hundred tiny ops, and nn.Module.__call__ bookkeeping was a fifth
# of the time. The modules stay for parameter names (checkpoints) and structure.


class Attention(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.n_head, self.head_dim = config.n_head, config.head_dim
        self.qkv = nn.Linear(config.n_embd, 3 * config.n_embd, bias=False)  # fused projection
        self.proj = nn.Linear(config.n_embd, config.n_embd, bias=False)
        self.dropout = config.dropout

    def forward(self, x, cos, sin, cache: KVCache | None, layer: int, positions):
        B, T, C = x.shape
        qkv = F.linear(x, self.qkv.weight).view(B, T, 3, self.n_head, self.head_dim)
        qkv = qkv.permute(2, 0, 3, 1, 4)  # (3, B, H, T, hd)
        qk = apply_rope(qkv[:2], cos, sin)  # rotate q and k in one go
        q, k, v = qk[0], qk[1], qkv[2]
        if cache is None:
            dropout = self.dropout if self.training else 0.0
            y = F.scaled_dot_product_attention(q, k, v, is_causal=True, dropout_p=dropout)
        else:
            k, v = cache.update(layer, positions, k, v)  # (B, H, S, hd)
            mask = cache.mask(positions)
            y = F.scaled_dot_product_attention(q, k, v, mask, is_causal=mask is None and T > 1)
        return F.linear(y.transpose(1, 2).reshape(B, T, C), self.proj.weight)


class MLP(nn.Module):
    def __init__(self, config: ModelConfig, width: int = 4):
        super().__init__()
        self.up = nn.Linear(config.n_embd, width * config.n_embd, bias=False)
        self.down = nn.Linear(width * config.n_embd, config.n_embd, bias=False)
        self.dropout = config.dropout

    def forward(self, x):
        y = F.linear(F.gelu(F.linear(x, self.up.weight), approximate="tanh"), self.down.weight)
        return F.dropout(y, self.dropout, self.training) if self.dropout else y


class Block(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.norm1 = nn.RMSNorm(config.n_embd)
        self.attn = Attention(config)
        self.norm2 = nn.RMSNorm(config.n_embd)
        self.mlp = MLP(config)
        self.shape = (config.n_embd,)

    def forward(self, x, cos, sin, cache, layer, positions):
        h = F.rms_norm(x, self.shape, self.norm1.weight, self.norm1.eps)
        x = x + self.attn.forward(h, cos, sin, cache, layer, positions)
        h = F.rms_norm(x, self.shape, self.norm2.weight, self.norm2.eps)
        return x + self.mlp.forward(h)


class MusicTransformer(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        if config.vocab_size is None:
            raise InvalidParameterError("ModelConfig.vocab_size is not set (see with_vocab)")
        self.config = config
        self.embed = nn.Embedding(config.vocab_size, config.n_embd)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.norm = nn.RMSNorm(config.n_embd)
        cos, sin = rope_tables(config.head_dim, config.block_size, config.rope_base)
        self.register_buffer("rope_cos", cos, persistent=False)
        self.register_buffer("rope_sin", sin, persistent=False)
        self.apply(self._init_weights)
        for name, p in self.named_parameters():  # scaled init of residual projections (GPT-2)
            if name.endswith(("proj.weight", "down.weight")):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    @staticmethod
    def _init_weights(module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def num_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def new_cache(self, batch: int, static: bool = False) -> KVCache:
        """A cache for one request, on the model's device and dtype (see KVCache for static)."""
        w = self.embed.weight
        return KVCache(self.config, batch, self.config.block_size, w.device, w.dtype, static)

    def forward(self, idx: torch.Tensor, targets: torch.Tensor | None = None):
        """Training and scoring: idx (B, T) -> (logits (B, T, vocab), loss). The loss is the mean
        next-token cross-entropy against targets (B, T), IGNORE skipped; None without targets."""
        T = idx.size(1)
        if self.config.block_size < T:
            raise ValueError(f"sequence of {T} exceeds block_size {self.config.block_size}")
        out = self._outputs(idx, torch.arange(T, device=idx.device), None)
        return out, None if targets is None else self._loss(out, targets)

    def _loss(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(
            logits.float().reshape(-1, logits.size(-1)), targets.reshape(-1), ignore_index=IGNORE
        )

    def prefill(self, idx: torch.Tensor, cache: KVCache, every_position: bool = False):
        """Fill an empty cache with idx (B, T) at positions 0..T-1 -> the last logits
        (B, vocab), or those of every position (B, T, vocab): they come at no extra cost."""
        T = idx.size(1)
        if cache.max_len < T:
            raise ValueError(f"prompt of {T} tokens exceeds the cache of {cache.max_len}")
        out = self._outputs(idx, torch.arange(T, device=idx.device), cache)
        return out if every_position else out[:, -1]

    def extend(self, idx: torch.Tensor, start: int, cache: KVCache) -> torch.Tensor:
        """idx (B, T) after the `start` tokens already in the cache, at positions start.. ->
        the logits of every position (B, T, vocab): a prefix prefilled once, then extended by
        every candidate at once."""
        T = idx.size(1)
        if cache.max_len < start + T:
            raise ValueError(f"{start} + {T} tokens exceed the cache of {cache.max_len}")
        return self._outputs(idx, torch.arange(start, start + T, device=idx.device), cache)

    def decode_step(self, idx: torch.Tensor, position: torch.Tensor, cache: KVCache):
        """One new token per row, idx (B, 1), at `position` (1,) -> logits (B, vocab)."""
        return self._outputs(idx, position, cache)[:, -1]

    def _outputs(self, idx, positions, cache):
        return self.head(self._trunk(idx, positions, cache))

    def head(self, h):
        """Logits (B, T, vocab) from the trunk's states h (B, T, C): the head is tied to the
        embedding. (A decoder that runs the trunk elsewhere calls this.)"""
        return F.linear(h, self.embed.weight)

    def _trunk(self, idx, positions, cache):
        """The normalised last hidden state of each position, (B, T, C)."""
        cos, sin = self.rope_cos[positions], self.rope_sin[positions]  # (T, hd/2)
        x = F.embedding(idx, self.embed.weight)  # (B, T, C)
        if self.config.dropout and self.training:
            x = F.dropout(x, self.config.dropout)
        for layer, block in enumerate(self.blocks):
            x = block.forward(x, cos, sin, cache, layer, positions)
        return F.rms_norm(x, (self.config.n_embd,), self.norm.weight, self.norm.eps)
