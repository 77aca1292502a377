"""A CPU decoding step run as one ONNX Runtime call, with int8 weights.

At batch 1 on a CPU a decoding step streams every weight from memory once per step; maestro-base's
float32 weights (102 MB) do not fit a laptop's L3 cache, and PyTorch has no fast int8 kernel for
AVX2 machines. ONNX Runtime's dynamically quantized MatMul (int8 weights, per output channel)
does: the weights shrink fourfold. (int4 weights — MatMulNBits, blocks of 32 — were faster
still at batch 1, but made maestro-base's takes measurably denser: docs/performance.md.)

The whole step is one graph, token ids in and logits out: the embedding, per layer the norm,
the qkv product, ONNX Runtime's GroupQueryAttention (rotary positions applied inside, the new
keys and values written into the cache in place), the output product, the MLP; the final norm
and the tied head. Each PyTorch op around an engine call costs a few microseconds, and a step
of 1-2 ms has no room for a dozen of them (the head in PyTorch was a fifth of the step). The
embedding and the head keep float32 weights: they are 3% of the work and exact.

The same graph prefills: S tokens at positions 0..S-1 in one call, the int8 products then being
matrix products (the prompt, and each slide of the window, at a fraction of PyTorch's float32
time). The KV cache stays the model's own (KVCache): its buffers are bound to the graph's past
and present inputs and outputs (I/O binding), so nothing is copied per step and PyTorch can
read or extend what the engine wrote. The graph is built here from the model's weights (no
exporter involved), quantized once and kept in a temporary folder keyed by a hash of the weights.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .errors import InvalidParameterError
from .model import KVCache, MusicTransformer

log = logging.getLogger(__name__)

OPSET = 23  # RMSNormalization; Gelu with approximate="tanh"
EMBED, HEAD = "x_0", "logits"  # the nodes that keep float32 weights
WEIGHTS = ("int8", "float32")  # how the products' weights may be stored


def available() -> bool:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def version() -> str:
    import onnxruntime

    return onnxruntime.__version__


def _step_graph(model: MusicTransformer):
    """The model's step as an onnx ModelProto (float32 weights).

    inputs:  idx (B, S) int64: the new tokens; seqlens_k (B,) int32: the position of the last;
             total_length () int32: that position + 1;
             past_key_i, past_value_i (B, H, max_len, hd): the cache
    outputs: logits (B, S, vocab); present_key_i, present_value_i (bound to the same buffers as
             the past ones: the cache is written in place)
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    cfg = model.config
    H, hd = cfg.n_head, cfg.head_dim
    eps = float(torch.finfo(torch.float32).eps)  # nn.RMSNorm(eps=None) on float32
    nodes, inits = [], []

    def weight(name, t: torch.Tensor, transpose=True):
        array = t.detach().float().cpu().numpy()
        inits.append(numpy_helper.from_array(array.T.copy() if transpose else array, name))
        return name

    def node(op, inputs, outputs, **kwargs):
        nodes.append(helper.make_node(op, inputs, outputs, name=outputs[0], **kwargs))
        return outputs[0]

    def rms(x, w: torch.Tensor, tag):
        inputs = [x, weight(f"{tag}_w", w, transpose=False)]
        return node("RMSNormalization", inputs, [tag], axis=-1, epsilon=eps)

    def add_and_norm(x, y, w: torch.Tensor, tag, total):
        """(RMSNorm(x + y), x + y)"""
        gamma = weight(f"{tag}_w", w, transpose=False)
        nodes.append(
            helper.make_node(
                "SkipSimplifiedLayerNormalization",
                [x, y, gamma],
                [tag, "", "", total],
                name=tag,
                domain="com.microsoft",
                epsilon=eps,
            )
        )
        return tag, total

    def cache_value(name):
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, ["B", H, "max_len", hd])

    weight("cos", model.rope_cos, transpose=False)  # (block_size, hd/2), rotate-half layout
    weight("sin", model.rope_sin, transpose=False)
    inputs = [
        helper.make_tensor_value_info("idx", TensorProto.INT64, ["B", "S"]),
        helper.make_tensor_value_info("seqlens_k", TensorProto.INT32, ["B"]),
        helper.make_tensor_value_info("total_length", TensorProto.INT32, []),
    ]
    outputs = [
        helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["B", "S", cfg.vocab_size])
    ]
    x = node("Gather", [weight("embed_w", model.embed.weight, transpose=False), "idx"], [EMBED])
    h = rms(x, model.blocks[0].norm1.weight, "norm1_0")
    # Each residual sum and the norm after it are one operator (an operator costs ~8 us here).
    norms_after = (
        [b.norm2.weight for b in model.blocks],
        [
            *(b.norm1.weight for b in model.blocks[1:]),
            model.norm.weight,
        ],
    )
    for i, block in enumerate(model.blocks):
        qkv = node("MatMul", [h, weight(f"qkv_{i}", block.attn.qkv.weight)], [f"qkv_out_{i}"])
        node("Split", [qkv], [f"q_{i}", f"k_{i}", f"v_{i}"], axis=-1, num_outputs=3)
        past, present = (
            [f"past_key_{i}", f"past_value_{i}"],
            [f"present_key_{i}", f"present_value_{i}"],
        )
        inputs += [cache_value(n) for n in past]
        outputs += [cache_value(n) for n in present]
        y = node(
            "GroupQueryAttention",
            [f"q_{i}", f"k_{i}", f"v_{i}", *past, "seqlens_k", "total_length", "cos", "sin"],
            [f"y_{i}", *present],
            domain="com.microsoft",
            num_heads=H,
            kv_num_heads=H,
            do_rotary=1,
            rotary_interleaved=0,
        )
        p = node("MatMul", [y, weight(f"proj_{i}", block.attn.proj.weight)], [f"proj_out_{i}"])
        h, x = add_and_norm(x, p, norms_after[0][i], f"norm2_{i}", f"mid_{i}")
        u = node("MatMul", [h, weight(f"up_{i}", block.mlp.up.weight)], [f"up_out_{i}"])
        g = node("Gelu", [u], [f"gelu_{i}"], approximate="tanh")
        d = node("MatMul", [g, weight(f"down_{i}", block.mlp.down.weight)], [f"down_out_{i}"])
        last = i == len(model.blocks) - 1
        tag = "state" if last else f"norm1_{i + 1}"
        h, x = add_and_norm(x, d, norms_after[1][i], tag, f"x_{i + 1}")
    state = h
    node("MatMul", [state, weight("head_w", model.embed.weight)], [HEAD])  # tied
    graph = helper.make_graph(nodes, "step", inputs, outputs, inits)
    opsets = [helper.make_opsetid("", OPSET), helper.make_opsetid("com.microsoft", 1)]
    proto = helper.make_model(graph, opset_imports=opsets)
    onnx.checker.check_model(proto)
    return proto


def _quantized(proto, weights: str):
    """The graph with its products' weights as `weights` says: "int8", per output channel, the
    activations quantized on the fly (ONNX Runtime's dynamic quantization); "float32", as they
    are (the reference the tests hold the graph to)."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    if weights == "float32":
        return proto
    with tempfile.TemporaryDirectory() as folder:  # (quantize_dynamic works on files)
        plain, built = Path(folder) / "plain.onnx", Path(folder) / "int8.onnx"
        onnx.save(proto, plain)
        quantize_dynamic(
            plain,
            built,
            per_channel=True,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=[EMBED, HEAD],
            # the attention operator's outputs have no inferred type: they are float
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
        return onnx.load(built)


def model_key(model: MusicTransformer) -> str:
    """A short hash of a model's architecture and weights: the graph holds both (the rotary
    tables' length and base, the heads), so equal weights under another config get their own."""
    h = hashlib.sha256(json.dumps(model.config.to_dict(), sort_keys=True).encode())
    for name, t in model.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().float().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


class OnnxDecoder:
    """decode_step(idx, position, cache) and prefill(idx, cache) in one ONNX Runtime call each
    (int8 weights), on the model's own float32 CPU cache."""

    GRAPH = "whole-step-2"  # in the folder's name: graphs of an older layout are not reused

    def __init__(self, model: MusicTransformer, weights: str = "int8", threads: int | None = None):
        if weights not in WEIGHTS:
            raise InvalidParameterError(f"weights must be one of {', '.join(WEIGHTS)}.")
        if model.embed.weight.dtype != torch.float32 or model.embed.weight.device.type != "cpu":
            raise InvalidParameterError("The ONNX Runtime decoders run float32 models on the CPU.")
        self.model = model
        self.key = model_key(model)  # hashing the weights takes ~0.1 s at the base size: once
        self.threads = threads or torch.get_num_threads()
        self.session = self._session(weights)
        self._bound: _Binding | None = None

    def _session(self, weights: str):
        """The graph with `weights`, built and quantized on first use and kept on disk."""
        import onnx
        import onnxruntime as ort

        folder = Path(tempfile.gettempdir()) / "musicgen-onnx"
        path = folder / f"{self.key}-{self.GRAPH}-{weights}.onnx"
        if not path.is_file():
            folder.mkdir(parents=True, exist_ok=True)
            built = path.with_suffix(f".{os.getpid()}.tmp")
            onnx.save(_quantized(_step_graph(self.model), weights), built)
            os.replace(built, path)  # whole or not at all: a killed build is built again
        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Spinning worker threads pick up each of the graph's ~100 operators at once instead of
        # being woken for it: 2.7 -> 1.8 ms a step at the base size (2-core EPYC). Between
        # steps only the sampler's few small ops run, on the other core.
        options.add_session_config_entry("session.intra_op.allow_spinning", "1")
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    @torch.inference_mode()
    def __call__(self, idx: torch.Tensor, position: torch.Tensor, cache: KVCache) -> torch.Tensor:
        """One new token per row, idx (B, 1), at `position` (1,) -> logits (B, vocab)."""
        step = self._bound
        if step is None or step.key != _cache_key(cache, idx.size(0)):
            step = self._bound = self._binding(self.session, cache, idx.size(0), 1)
        step.idx.copy_(idx)
        step.seqlens_k[:] = int(position[-1])
        step.total_length[...] = int(position[-1]) + 1
        step.session.run_with_iobinding(step.binding)
        return step.logits[:, -1].clone()  # (the buffer is the next step's)

    @torch.inference_mode()
    def prefill(self, idx: torch.Tensor, cache: KVCache, every_position: bool = False):
        """Fill the cache with idx (B, T) at positions 0..T-1 -> the last logits (B, vocab), or
        those of every position (B, T, vocab) (as MusicTransformer.prefill)."""
        B, T = idx.shape
        if cache.max_len < T:
            raise ValueError(f"prompt of {T} tokens exceeds the cache of {cache.max_len}")
        run = self._binding(self.session, cache, B, T)  # (once per window: ~0.1 ms)
        run.idx.copy_(idx)
        run.seqlens_k[:] = T - 1
        run.total_length[...] = T
        run.session.run_with_iobinding(run.binding)
        return run.logits if every_position else run.logits[:, -1]

    @torch.inference_mode()
    def extend_each(self, idx: torch.Tensor, start: int, cache: KVCache) -> torch.Tensor:
        """Each row of idx (B, T) after the same `start` tokens of a one-row cache, at positions
        start.. -> the logits of every position (B, T, vocab). One call a row (the engine's
        attention takes several new tokens after cached ones one row at a time), each writing
        the cache's slots from `start` on, which the next row writes again: the shared
        prefix is stored once, never copied per row."""
        B, T = idx.shape
        if cache.k.size(1) != 1 or cache.max_len < start + T:
            raise ValueError(f"a one-row cache of at least {start + T} slots is needed")
        run = self._binding(self.session, cache, 1, T)
        run.seqlens_k[:] = start + T - 1
        run.total_length[...] = start + T
        out = torch.empty(B, T, self.model.config.vocab_size)
        for row in range(B):
            run.idx.copy_(idx[row : row + 1])
            run.session.run_with_iobinding(run.binding)
            out[row] = run.logits[0]
        return out

    def _binding(self, session, cache: KVCache, batch: int, length: int) -> _Binding:
        """The I/O binding of a cache for `length` new tokens a row: its buffers as the graph's
        past and present, and buffers of its own for the tokens and the logits (binding per
        step, and copying the outputs back, cost more than the step's attention)."""
        V = self.model.config.vocab_size
        run = _Binding(
            _cache_key(cache, batch),
            session,
            session.io_binding(),
            torch.zeros(batch, length, dtype=torch.long),
            torch.zeros(batch, length, V),
            np.zeros(batch, dtype=np.int32),
            np.zeros((), dtype=np.int32),
        )
        b = run.binding

        def bind(name, buffer: torch.Tensor | np.ndarray, output=False):
            """By address: the graph reads and writes the buffer itself."""
            if isinstance(buffer, np.ndarray):
                args = (buffer.dtype.type, list(buffer.shape), buffer.ctypes.data)
            else:
                dtype = np.int64 if buffer.dtype == torch.long else np.float32
                args = (dtype, list(buffer.shape), buffer.data_ptr())
            (b.bind_output if output else b.bind_input)(name, "cpu", 0, *args)

        bind("idx", run.idx)
        bind("logits", run.logits, output=True)
        bind("seqlens_k", run.seqlens_k)
        bind("total_length", run.total_length)
        for i in range(self.model.config.n_layer):
            for name, buffer in (("key", cache.k[i]), ("value", cache.v[i])):
                bind(f"past_{name}_{i}", buffer)
                bind(f"present_{name}_{i}", buffer, output=True)
        return run


def _cache_key(cache: KVCache, batch: int) -> tuple:
    return cache.k.data_ptr(), cache.v.data_ptr(), cache.max_len, batch


@dataclass
class _Binding:
    key: tuple
    session: object  # onnxruntime.InferenceSession
    binding: object  # onnxruntime.IOBinding
    idx: torch.Tensor
    logits: torch.Tensor
    seqlens_k: np.ndarray
    total_length: np.ndarray
