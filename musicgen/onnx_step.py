"""A CPU decoding step whose weight products run in ONNX Runtime with int8 weights.

At batch 1 on a CPU a decoding step streams every weight from memory once per token; maestro-base's
float32 weights (102 MB) do not fit a laptop's L3 cache, and PyTorch has no fast int8 kernel for
AVX2 machines. ONNX Runtime's dynamically quantized MatMul (int8 weights, per output channel)
does: the weights shrink fourfold and stay in the cache.

The step is split where the KV cache is: PyTorch keeps the cache, rotary positions and attention
(the same code as the model's, on the same dynamic cache), ONNX Runtime runs everything between
two attentions as one graph: the output projection, the residual, the MLP and the next layer's
norm and qkv projection. One step costs n_layer + 1 graph runs. The graphs are built here from
the model's own weights (no exporter involved), quantized once, and kept in a temporary folder
keyed by a hash of the weights (a restart reuses them).

Both kinds of model share the trunk, so both use these graphs: the step's input is the model's
own embedding of the step (a token's, or the sum of an event's fields'), its output the trunk's
state, and the model's `head` (in PyTorch) turns that into what the model gives: a token
model's logits, or the two-level model's state, whose fields its field decoder then writes.
"""

from __future__ import annotations

import hashlib
import logging
import os
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .model import KVCache, MusicTransformer, apply_rope

log = logging.getLogger(__name__)

OPSET = 20  # Gelu with approximate="tanh"


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


def _graph_parts(model: MusicTransformer):
    """The n_layer + 1 graphs as onnx ModelProtos (float32 weights).

    part 0:        x -> qkv of layer 0
    part i (1..L-1): (x, y) -> x', qkv of layer i   (y: attention output of layer i-1)
    part L:        (x, y) -> the trunk's state (the final norm's output)
    """
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    C = model.config.n_embd
    blocks = model.blocks
    eps = float(torch.finfo(torch.float32).eps)  # nn.RMSNorm(eps=None) on float32

    def weight(name, t: torch.Tensor, inits, transpose=True):
        array = t.detach().float().cpu().numpy()
        inits.append(numpy_helper.from_array(array.T.copy() if transpose else array, name))
        return name

    def rms(nodes, inits, x, w: torch.Tensor, tag):
        nodes += [
            helper.make_node("Mul", [x, x], [f"{tag}_sq"]),
            helper.make_node("ReduceMean", [f"{tag}_sq", "axes_last"], [f"{tag}_ms"], keepdims=1),
            helper.make_node("Add", [f"{tag}_ms", "eps"], [f"{tag}_mse"]),
            helper.make_node("Sqrt", [f"{tag}_mse"], [f"{tag}_rms"]),
            helper.make_node("Div", [x, f"{tag}_rms"], [f"{tag}_n"]),
            helper.make_node(
                "Mul", [f"{tag}_n", weight(f"{tag}_w", w, inits, False)], [f"{tag}_out"]
            ),
        ]
        return f"{tag}_out"

    def constants(inits):
        inits.append(numpy_helper.from_array(np.array([-1], dtype=np.int64), "axes_last"))
        inits.append(numpy_helper.from_array(np.array(eps, dtype=np.float32), "eps"))

    def qkv(nodes, inits, x, block, tag):
        h = rms(nodes, inits, x, block.norm1.weight, f"{tag}_n1")
        nodes.append(
            helper.make_node(
                "MatMul", [h, weight(f"{tag}_wqkv", block.attn.qkv.weight, inits)], ["qkv"]
            )
        )

    def after_attention(nodes, inits, block, tag):
        """x + proj(y), then + mlp(norm2(.)): the rest of a block."""
        nodes += [
            helper.make_node(
                "MatMul", ["y", weight(f"{tag}_wproj", block.attn.proj.weight, inits)], [f"{tag}_p"]
            ),
            helper.make_node("Add", ["x", f"{tag}_p"], [f"{tag}_x2"]),
        ]
        h = rms(nodes, inits, f"{tag}_x2", block.norm2.weight, f"{tag}_n2")
        nodes += [
            helper.make_node(
                "MatMul", [h, weight(f"{tag}_wup", block.mlp.up.weight, inits)], [f"{tag}_u"]
            ),
            helper.make_node("Gelu", [f"{tag}_u"], [f"{tag}_g"], approximate="tanh"),
            helper.make_node(
                "MatMul",
                [f"{tag}_g", weight(f"{tag}_wdown", block.mlp.down.weight, inits)],
                [f"{tag}_d"],
            ),
            helper.make_node("Add", [f"{tag}_x2", f"{tag}_d"], ["x_out"]),
        ]

    def tensor(name, last):
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, ["B", 1, last])

    parts = []
    for i in range(len(blocks) + 1):
        nodes, inits = [], []
        constants(inits)
        if i == 0:
            qkv(nodes, inits, "x", blocks[0], "b0")
            inputs, outputs = [tensor("x", C)], [tensor("qkv", 3 * C)]
        else:
            after_attention(nodes, inits, blocks[i - 1], f"b{i - 1}")
            inputs = [tensor("x", C), tensor("y", C)]
            if i < len(blocks):
                nodes.append(helper.make_node("Identity", ["x_out"], ["x_next"]))
                qkv(nodes, inits, "x_out", blocks[i], f"b{i}")
                outputs = [tensor("x_next", C), tensor("qkv", 3 * C)]
            else:
                h = rms(nodes, inits, "x_out", model.norm.weight, "final")
                nodes.append(helper.make_node("Identity", [h], ["state"]))
                outputs = [tensor("state", C)]
        graph = helper.make_graph(nodes, f"part{i}", inputs, outputs, inits)
        parts.append(helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)]))
    for p in parts:
        onnx.checker.check_model(p)
    return parts


def weights_key(model: MusicTransformer) -> str:
    """A short hash of a model's weights."""
    h = hashlib.sha256()
    for name, t in model.state_dict().items():
        h.update(name.encode())
        h.update(t.detach().float().cpu().numpy().tobytes())
    return h.hexdigest()[:16]


class OnnxDecoder:
    """decode_step(idx, position, cache) with the trunk's weight products in ONNX Runtime (int8)."""

    GRAPHS = "trunk"  # in the folder's name: graphs built by an older layout are not reused

    def __init__(self, model: MusicTransformer, quantize: bool = True, threads: int | None = None):
        import onnx
        import onnxruntime as ort
        from onnxruntime.quantization import QuantType, quantize_dynamic

        self.model = model
        folder = (
            Path(tempfile.gettempdir())
            / "musicgen-onnx"
            / f"{weights_key(model)}-{self.GRAPHS}-{'int8' if quantize else 'fp32'}"
        )
        if not (folder / "done").is_file():
            folder.mkdir(parents=True, exist_ok=True)
            for i, part in enumerate(_graph_parts(model)):
                plain = folder / f"part{i}.fp32.onnx"
                onnx.save(part, plain)
                if quantize:
                    quantize_dynamic(
                        plain,
                        folder / f"part{i}.onnx",
                        per_channel=True,
                        weight_type=QuantType.QInt8,
                    )
                    plain.unlink()
                else:
                    os.replace(plain, folder / f"part{i}.onnx")
            (folder / "done").write_text("ok")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # Spinning threads wait faster but steal the core from PyTorch's attention in between.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.sessions = [
            ort.InferenceSession(
                str(folder / f"part{i}.onnx"), options, providers=["CPUExecutionProvider"]
            )
            for i in range(model.config.n_layer + 1)
        ]

    @torch.inference_mode()
    def __call__(self, idx: torch.Tensor, position: torch.Tensor, cache: KVCache) -> torch.Tensor:
        m = self.model
        cfg = m.config
        B = idx.size(0)
        cos, sin = m.rope_cos[position], m.rope_sin[position]
        x = m._embed(idx).numpy()  # (B, 1, C)
        x_qkv = self.sessions[0].run(None, {"x": x})
        x_in, qkv = x, x_qkv[0]
        for layer in range(cfg.n_layer):
            q_k_v = torch.from_numpy(qkv).view(B, 1, 3, cfg.n_head, cfg.head_dim)
            q_k_v = q_k_v.permute(2, 0, 3, 1, 4)  # (3, B, H, 1, hd)
            qk = apply_rope(q_k_v[:2], cos, sin)
            k, v = cache.update(layer, position, qk[1], q_k_v[2])
            y = F.scaled_dot_product_attention(qk[0], k, v)  # one query: no mask needed
            y = y.transpose(1, 2).reshape(B, 1, cfg.n_embd).numpy()
            out = self.sessions[layer + 1].run(None, {"x": x_in, "y": y})
            if layer + 1 < cfg.n_layer:
                x_in, qkv = out
        return m.head(torch.from_numpy(out[0]), position, cache)[:, -1]
