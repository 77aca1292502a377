"""A CPU decoding step run as one ONNX Runtime call, with int8 weights.

At batch 1 on a CPU a decoding step streams every weight from memory once per step; maestro-base's
float32 weights (102 MB) do not fit a laptop's L3 cache, and PyTorch has no fast int8 kernel for
AVX2 machines. ONNX Runtime's dynamically quantized MatMul (int8 weights, per output channel)
does: the weights shrink fourfold and stay in the cache.

The whole trunk step is one graph: per layer the norm, the qkv product, ONNX Runtime's
GroupQueryAttention (rotary positions applied inside, the new key and value written into the
cache in place), the output product, the MLP; then the final norm. The KV cache stays the
model's own (KVCache): its buffers are bound to the graph's past and present inputs and outputs
(I/O binding), so PyTorch's prefill and ONNX Runtime's steps fill the same memory, with nothing
copied per step. The graph is built here from the model's weights (no exporter involved),
quantized once and kept in a temporary folder keyed by a hash of the weights.

The step's input is the token's embedding, its output the trunk's state; the model's tied
`head` (in PyTorch) turns that into logits.
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
    """The trunk's decoding step as an onnx ModelProto (float32 weights).

    inputs:  x (B, 1, C): the step's embedding; seqlens_k (B,) int32: its position;
             total_length () int32: position + 1; past_key_i, past_value_i (B, H, max_len, hd)
    outputs: state (B, 1, C): the trunk's normalised state; present_key_i, present_value_i
             (bound to the same buffers as the past ones: the cache is written in place)
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    cfg = model.config
    C, H, hd = cfg.n_embd, cfg.n_head, cfg.head_dim
    eps = float(torch.finfo(torch.float32).eps)  # nn.RMSNorm(eps=None) on float32
    nodes, inits = [], []

    def weight(name, t: torch.Tensor, transpose=True):
        array = t.detach().float().cpu().numpy()
        inits.append(numpy_helper.from_array(array.T.copy() if transpose else array, name))
        return name

    def node(op, inputs, outputs, **kwargs):
        nodes.append(helper.make_node(op, inputs, outputs, **kwargs))
        return outputs[0]

    def rms(x, w: torch.Tensor, tag):
        inputs = [x, weight(f"{tag}_w", w, transpose=False)]
        return node("RMSNormalization", inputs, [tag], axis=-1, epsilon=eps)

    def cache_value(name):
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, ["B", H, "max_len", hd])

    weight("cos", model.rope_cos, transpose=False)  # (block_size, hd/2), rotate-half layout
    weight("sin", model.rope_sin, transpose=False)
    inputs = [
        helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", 1, C]),
        helper.make_tensor_value_info("seqlens_k", TensorProto.INT32, ["B"]),
        helper.make_tensor_value_info("total_length", TensorProto.INT32, []),
    ]
    outputs = [helper.make_tensor_value_info("state", TensorProto.FLOAT, ["B", 1, C])]
    x = "x"
    for i, block in enumerate(model.blocks):
        h = rms(x, block.norm1.weight, f"norm1_{i}")
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
        x2 = node("Add", [x, p], [f"mid_{i}"])
        h = rms(x2, block.norm2.weight, f"norm2_{i}")
        u = node("MatMul", [h, weight(f"up_{i}", block.mlp.up.weight)], [f"up_out_{i}"])
        g = node("Gelu", [u], [f"gelu_{i}"], approximate="tanh")
        d = node("MatMul", [g, weight(f"down_{i}", block.mlp.down.weight)], [f"down_out_{i}"])
        x = node("Add", [x2, d], [f"x_{i + 1}"])
    rms(x, model.norm.weight, "state")
    graph = helper.make_graph(nodes, "trunk_step", inputs, outputs, inits)
    opsets = [helper.make_opsetid("", OPSET), helper.make_opsetid("com.microsoft", 1)]
    proto = helper.make_model(graph, opset_imports=opsets)
    onnx.checker.check_model(proto)
    return proto


def model_key(model: MusicTransformer) -> str:
    """A short hash of a model's architecture and weights: the graph holds both (the rotary
    tables' length and base, the heads), so equal weights under another config get their own."""
    h = hashlib.sha256(json.dumps(model.config.to_dict(), sort_keys=True).encode())
    for name, t in model.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().float().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


class OnnxDecoder:
    """decode_step(idx, position, cache) with the trunk's step in one ONNX Runtime call (int8
    weights), on the model's own float32 CPU cache."""

    GRAPH = "trunk-step"  # in the folder's name: graphs of an older layout are not reused

    def __init__(self, model: MusicTransformer, quantize: bool = True, threads: int | None = None):
        import onnx
        import onnxruntime as ort
        from onnxruntime.quantization import QuantType, quantize_dynamic

        if model.embed.weight.dtype != torch.float32 or model.embed.weight.device.type != "cpu":
            raise InvalidParameterError("The onnx-int8 decoder runs float32 models on the CPU.")
        self.model = model
        self.key = model_key(model)  # hashing the weights takes ~0.1 s at the base size: once
        folder = Path(tempfile.gettempdir()) / "musicgen-onnx"
        path = folder / f"{self.key}-{self.GRAPH}-{'int8' if quantize else 'fp32'}.onnx"
        if not path.is_file():
            folder.mkdir(parents=True, exist_ok=True)
            plain = path.with_suffix(f".{os.getpid()}.fp32")
            onnx.save(_step_graph(model), plain)
            if quantize:
                built = path.with_suffix(f".{os.getpid()}.tmp")
                quantize_dynamic(
                    plain,
                    built,
                    per_channel=True,
                    weight_type=QuantType.QInt8,
                    # the attention operator's outputs have no inferred type: they are float
                    extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
                )
                plain.unlink()
            else:
                built = plain
            os.replace(built, path)  # whole or not at all: a killed build is built again
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Spinning threads wait faster but steal the core from PyTorch between steps.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self._bound: _Binding | None = None

    @torch.inference_mode()
    def __call__(self, idx: torch.Tensor, position: torch.Tensor, cache: KVCache) -> torch.Tensor:
        m = self.model
        step = self._binding(cache, idx.size(0))
        step.x.copy_(torch.nn.functional.embedding(idx, m.embed.weight))  # (B, 1, C)
        step.seqlens_k[:] = int(position[-1])
        step.total_length[...] = int(position[-1]) + 1
        self.session.run_with_iobinding(step.binding)
        return m.head(step.state)[:, -1]

    def _binding(self, cache: KVCache, batch: int) -> _Binding:
        """The I/O binding of a cache: its buffers as the graph's past and present, and buffers
        of its own for the step's input and output; made once per cache, then only refilled
        (binding per step, and copying the outputs back, cost more than the step's attention)."""
        key = (cache.k.data_ptr(), cache.v.data_ptr(), batch)
        if self._bound is not None and self._bound.key == key:
            return self._bound
        C = self.model.config.n_embd
        step = _Binding(
            key,
            self.session.io_binding(),
            torch.zeros(batch, 1, C),
            torch.zeros(batch, 1, C),
            np.zeros(batch, dtype=np.int32),
            np.zeros((), dtype=np.int32),
        )
        b = step.binding

        def bind(name, buffer: torch.Tensor | np.ndarray, output=False):
            """By address: the graph reads and writes the buffer itself."""
            if isinstance(buffer, np.ndarray):
                args = (buffer.dtype.type, list(buffer.shape), buffer.ctypes.data)
            else:
                args = (np.float32, list(buffer.shape), buffer.data_ptr())
            (b.bind_output if output else b.bind_input)(name, "cpu", 0, *args)

        bind("x", step.x)
        bind("state", step.state, output=True)
        bind("seqlens_k", step.seqlens_k)
        bind("total_length", step.total_length)
        for i in range(self.model.config.n_layer):
            for name, buffer in (("key", cache.k[i]), ("value", cache.v[i])):
                bind(f"past_{name}_{i}", buffer)
                bind(f"present_{name}_{i}", buffer, output=True)
        self._bound = step
        return step


@dataclass
class _Binding:
    key: tuple
    binding: object  # onnxruntime.IOBinding
    x: torch.Tensor
    state: torch.Tensor
    seqlens_k: np.ndarray
    total_length: np.ndarray
