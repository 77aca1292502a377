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

from .errors import InvalidParameterError

IGNORE = -100  # target value the loss skips (padding)
REPRESENTATIONS = ("tokens", "events")
# How the event model's field decoder reads the past: only through the trunk's state ("mlp"),
# or also by attending to the trunk's states of all the events so far ("attention").
FIELD_DECODERS = ("mlp", "attention")


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
    # What one position is: a token ("tokens", MusicTransformer) or a note's event of four
    # tokens ("events", EventTransformer: the trunk runs once per note, a small field decoder
    # of `field_layers` blocks writes its fields; see events.py).
    representation: str = "tokens"
    field_layers: int = 1
    field_decoder: str = "attention"  # one of FIELD_DECODERS (12.66 against 13.48 nats/note)

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
        if self.representation not in REPRESENTATIONS:
            raise InvalidParameterError(
                f"representation must be one of {', '.join(REPRESENTATIONS)} "
                f"(got {self.representation!r})"
            )
        if self.field_layers < 1:
            raise InvalidParameterError("field_layers must be at least 1")
        if self.field_decoder not in FIELD_DECODERS:
            raise InvalidParameterError(
                f"field_decoder must be one of {', '.join(FIELD_DECODERS)} "
                f"(got {self.field_decoder!r})"
            )

    def with_vocab(self, vocab_size: int) -> ModelConfig:
        return replace(self, vocab_size=vocab_size)

    @property
    def head_dim(self) -> int:
        return self.n_embd // self.n_head

    @property
    def cache_layers(self) -> int:
        """Layers of keys and values a KV cache holds: the trunk's, and the field decoder's
        memory of the events so far when it attends to them."""
        attends = self.representation == "events" and self.field_decoder == "attention"
        return self.n_layer + (self.field_layers if attends else 0)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, saved: dict) -> ModelConfig:
        """A saved config; one saved before a field existed gets the value it had then."""
        return cls(**(SAVED_BEFORE | saved))


# What configs saved before these fields existed meant (field_decoder: the MLP was the only one).
SAVED_BEFORE = {"field_decoder": "mlp"}


class KVCache:
    """Keys and values of every layer, (cache_layers, B, n_head, max_len, head_dim), per request.

    `update` writes new keys/values at their positions and returns what attention reads. A
    static cache returns the whole buffer (shapes never change, so a compiled or CUDA-graph step
    can be replayed; a mask hides the empty slots); a dynamic one returns only the filled part,
    which is cheaper in eager mode on a CPU, where attending over empty slots costs real time.
    """

    def __init__(self, config: ModelConfig, batch: int, max_len: int, device, dtype, static=False):
        shape = (config.cache_layers, batch, config.n_head, max_len, config.head_dim)
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
        self.k[layer].index_copy_(2, positions, k)
        self.v[layer].index_copy_(2, positions, v)
        if self.static:
            return self.k[layer], self.v[layer]
        end = int(positions[-1]) + 1  # a host tensor on the CPU: no device synchronisation
        return self.k[layer, :, :, :end], self.v[layer, :, :, :end]

    def read(self, layer: int, end: int):
        """The keys and values of slots 0..end-1 of `layer`."""
        return self.k[layer, :, :, :end], self.v[layer, :, :, :end]

    def mask(self, positions: torch.Tensor) -> torch.Tensor | None:
        """The attention mask for queries at `positions`: None means causal over what update
        returned (dynamic cache: a prefill from 0 or a single new token)."""
        return self.causal[positions] if self.static else None


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

    def decode_step(self, idx: torch.Tensor, position: torch.Tensor, cache: KVCache):
        """One new token per row, idx (B, 1), at `position` (1,) -> logits (B, vocab)."""
        return self._outputs(idx, position, cache)[:, -1]

    def _outputs(self, idx, positions, cache):
        return self.head(self._trunk(idx, positions, cache), positions, cache)

    def head(self, h, positions, cache):
        """What a position gives from the trunk's state h (B, T, C): logits (B, T, vocab), the
        head tied to the embedding. (A decoder that runs the trunk elsewhere calls this.)"""
        return F.linear(h, self.embed.weight)

    def _embed(self, idx):
        return F.embedding(idx, self.embed.weight)  # (B, T, C)

    def _trunk(self, idx, positions, cache):
        """The normalised last hidden state of each position, (B, T, C)."""
        cos, sin = self.rope_cos[positions], self.rope_sin[positions]  # (T, hd/2)
        x = self._embed(idx)
        if self.config.dropout and self.training:
            x = F.dropout(x, self.config.dropout)
        for layer, block in enumerate(self.blocks):
            x = block.forward(x, cos, sin, cache, layer, positions)
        return F.rms_norm(x, (self.config.n_embd,), self.norm.weight, self.norm.eps)


class MemoryAttention(nn.Module):
    """Attention from an event's fields to the trunk's states of the events up to it.

    The keys and values are made from each event's state once (`keys_values`) and kept in the
    KV cache beside the trunk's; a field's query sits at its event's position (RoPE), so it
    sees how long ago each earlier event was."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.n_head, self.head_dim = config.n_head, config.head_dim
        self.query = nn.Linear(config.n_embd, config.n_embd, bias=False)
        self.kv = nn.Linear(config.n_embd, 2 * config.n_embd, bias=False)
        self.proj = nn.Linear(config.n_embd, config.n_embd, bias=False)

    def keys_values(self, h, cos, sin):
        """States h (B, T, C) at positions with rotary cos, sin (T, hd/2) -> k, v (B, H, T, hd)."""
        B, T, _ = h.shape
        kv = F.linear(h, self.kv.weight).view(B, T, 2, self.n_head, self.head_dim)
        kv = kv.permute(2, 0, 3, 1, 4)
        return apply_rope(kv[0], cos, sin), kv[1]

    def forward(self, x, cos, sin, k, v, mask):
        """x (B, T, F, C): the fields of events at positions with cos, sin (T, hd/2); k, v
        (B, H, S, hd); mask (T * F, S), or None where every key may be seen."""
        B, T, Fn, C = x.shape
        q = F.linear(x, self.query.weight).view(B, T, Fn, self.n_head, self.head_dim)
        q = apply_rope(q.permute(0, 3, 1, 2, 4), cos[:, None], sin[:, None])  # (B, H, T, F, hd)
        y = F.scaled_dot_product_attention(q.reshape(B, self.n_head, T * Fn, -1), k, v, mask)
        y = y.view(B, self.n_head, T, Fn, self.head_dim).permute(0, 2, 3, 1, 4)
        return F.linear(y.reshape(B, T, Fn, C), self.proj.weight)


class FieldDecoder(nn.Module):
    """Writes an event's fields in order from the trunk's state h: field k is predicted from
    h + a learned embedding of k + the embeddings of fields 0..k-1 (a chain of heads, each fed
    the fields chosen before it), through `field_layers` residual blocks and the tied head.

    A block is an MLP ("mlp"), or attention to the trunk's states of the events so far and an
    MLP ("attention"): once the pitch is chosen, the duration and velocity can look back at
    how that pitch and its neighbours were played, as the token model's layers do after each
    token; the trunk's single state cannot hold that for every pitch at once."""

    def __init__(self, config: ModelConfig, fields: int):
        super().__init__()
        C, layers = config.n_embd, config.field_layers
        self.field = nn.Parameter(torch.zeros(fields, C))
        self.attends = config.field_decoder == "attention"
        if self.attends:
            self.attn_norms = nn.ModuleList(nn.RMSNorm(C) for _ in range(layers))
            self.attns = nn.ModuleList(MemoryAttention(config) for _ in range(layers))
        self.norms = nn.ModuleList(nn.RMSNorm(C) for _ in range(layers))
        # half the trunk's MLP width: it runs once per field, four times per position
        self.mlps = nn.ModuleList(MLP(config, width=2) for _ in range(layers))
        self.norm = nn.RMSNorm(C)
        self.shape = (C,)

    def forward(self, x, embed_weight, cos=None, sin=None, memory=None):
        """x (B, T, F, C): the fields' inputs; memory: (k, v, mask) per block, with the rotary
        cos, sin (T, hd/2) of the events' positions, when the decoder attends -> logits."""
        for i, (norm, mlp) in enumerate(zip(self.norms, self.mlps)):
            if self.attends:
                h = F.rms_norm(x, self.shape, self.attn_norms[i].weight, self.attn_norms[i].eps)
                x = x + self.attns[i].forward(h, cos, sin, *memory[i])
            x = x + mlp.forward(F.rms_norm(x, self.shape, norm.weight, norm.eps))
        x = F.rms_norm(x, self.shape, self.norm.weight, self.norm.eps)
        return F.linear(x, embed_weight)  # (..., vocab)


class EventTransformer(MusicTransformer):
    """The two-level model: the trunk (MusicTransformer's blocks) runs once per event, over
    the sum of its fields' embeddings; the FieldDecoder writes the next event's fields.

    idx and targets are (B, T, FIELDS) events (events.py). The loss is the summed NLL of the
    fields over the number of flat tokens those events stand for: nats per token, exactly
    comparable with the token model's (and per note, with the same note count)."""

    FIELDS = 4  # events.FIELDS

    def __init__(self, config: ModelConfig, pad_id: int):
        super().__init__(config)
        self.pad_id = pad_id
        self.fields = FieldDecoder(config, self.FIELDS)
        self.fields.apply(self._init_weights)
        nn.init.normal_(self.fields.field, mean=0.0, std=0.02)
        for name, p in self.fields.named_parameters():  # residual projections, as in the trunk
            if name.endswith(("proj.weight", "down.weight")):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * config.n_layer))

    def _embed(self, idx):
        return F.embedding(idx, self.embed.weight).sum(dim=-2)  # (B, T, F, C) -> (B, T, C)

    def _loss(self, h: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """forward() gives (hidden states (B, T, C), this loss) for events idx (B, T, F)."""
        nll, tokens, _ = self.field_nll(h, targets)
        return nll.sum() / tokens.clamp(min=1)

    def field_nll(self, h: torch.Tensor, targets: torch.Tensor):
        """Teacher-forced: the NLL of the events `targets` (B, T, F) predicted from the states
        h (B, T, C) of positions 0..T-1 before them (IGNORE: not scored), summed per field
        (F,); the flat tokens they stand for, and their notes."""
        pad, ignore = self.pad_id, targets == IGNORE
        no_note = targets[..., 1:2] == pad  # velocity and duration only come with a note
        scored = ~ignore
        scored[..., 2:] &= ~no_note
        chosen = F.embedding(targets.masked_fill(ignore, pad), self.embed.weight)  # (..,F,C)
        before = chosen.cumsum(dim=-2) - chosen  # the fields before each one
        x = h[..., None, :] + before + self.fields.field
        cos = sin = memory = None
        if self.fields.attends:  # field f of event t sees the states of events 0..t
            T = h.size(1)
            cos, sin = self.rope_cos[:T], self.rope_sin[:T]
            seen = torch.ones(T, T, dtype=torch.bool, device=h.device).tril()
            mask = seen.repeat_interleave(self.FIELDS, dim=0)  # (T * F, T)
            memory = [(*a.keys_values(h, cos, sin), mask) for a in self.fields.attns]
        logits = self.fields.forward(x, self.embed.weight, cos, sin, memory)
        nll = F.cross_entropy(
            logits.float().reshape(-1, logits.size(-1)),
            targets.masked_fill(~scored, IGNORE).reshape(-1),
            ignore_index=IGNORE,
            reduction="none",
        )
        nll = nll.view(-1, self.FIELDS).sum(dim=0)
        notes = (scored[..., 1] & ~no_note[..., 0]).sum()
        tokens = (scored[..., 0] & (targets[..., 0] != pad)).sum() + 3 * notes
        return nll, tokens, notes

    def head(self, h, positions, cache):
        """What a position gives: the trunk's state h (B, T, C) itself, from which field_logits
        writes the next event. So prefill() takes events (B, T, F) and gives states (B, C), or
        every position's (B, T, C); decode_step() takes idx (B, 1, F) and gives (B, C). With a
        cache, the field decoder's memory of these states is written beside the trunk's."""
        if cache is not None and self.fields.attends:
            cos, sin = self.rope_cos[positions], self.rope_sin[positions]
            for i, attn in enumerate(self.fields.attns):
                cache.update(self.config.n_layer + i, positions, *attn.keys_values(h, cos, sin))
        return h

    def field_logits(
        self, h: torch.Tensor, before: torch.Tensor, field: int, cache: KVCache, end: int
    ) -> torch.Tensor:
        """Logits (B, vocab) of `field` of the next event, given the trunk's state h (B, C) of
        the event in cache slot end-1 and the sum of the embeddings of the fields chosen
        before it (B, C)."""
        x = (h + before + self.fields.field[field])[:, None, None, :]  # (B, 1, 1, C)
        cos = sin = memory = None
        if self.fields.attends:
            cos, sin = self.rope_cos[end - 1 : end], self.rope_sin[end - 1 : end]
            n = self.config.n_layer
            memory = [(*cache.read(n + i, end), None) for i in range(self.config.field_layers)]
        return self.fields.forward(x, self.embed.weight, cos, sin, memory)[:, 0, 0]

    def embed_field(self, ids: torch.Tensor) -> torch.Tensor:
        return F.embedding(ids, self.embed.weight)


def build_model(config: ModelConfig, pad_id: int) -> MusicTransformer:
    """The model a config describes: a token model, or the two-level event model."""
    if config.representation == "events":
        return EventTransformer(config, pad_id)
    return MusicTransformer(config)
