"""Small, real TFLite models written on the fly for tests (no TensorFlow needed).

The models are plain TFLite flatbuffers built with the ``tflite`` schema bindings and
``flatbuffers`` (both in the ``test`` extra); the LiteRT interpreter loads and runs them like
any converted model. Every builder returns the path it wrote:

- :func:`write_channel_mean_model`: MoveNet-shaped, ``[1, N, N, 3]`` -> ``[1, 1, 17, 3]``.
- :func:`write_dense_softmax_model`: pose-classifier-shaped, ``[1, 51]`` -> ``[1, classes]``.
- :func:`write_shape_model`: any float32 input/output shapes, for shape-check errors.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import flatbuffers
import numpy as np
import tflite
from tflite.BuiltinOperator import BuiltinOperator as Op
from tflite.BuiltinOptions import BuiltinOptions
from tflite.TensorType import TensorType

__all__ = ["write_channel_mean_model", "write_dense_softmax_model", "write_shape_model"]

_TENSOR_TYPES = {
    np.dtype(np.float32): TensorType.FLOAT32,
    np.dtype(np.uint8): TensorType.UINT8,
    np.dtype(np.int32): TensorType.INT32,
}
# (schema table name such as "ReducerOptions", {field name such as "KeepDims": value})
Options = tuple[str, dict[str, Any]]


class _Graph:
    """One subgraph being assembled: tensors (constants carry their data) and operators."""

    def __init__(self) -> None:
        self.tensors: list[tuple[str, tuple[int, ...], np.dtype, np.ndarray | None]] = []
        self.ops: list[tuple[int, list[int], int, Options | None]] = []

    def tensor(
        self,
        name: str,
        shape: Sequence[int],
        dtype: Any = np.float32,
        data: np.ndarray | None = None,
    ) -> int:
        """Add a tensor (a constant when ``data`` is given) and return its index."""
        self.tensors.append((name, tuple(int(d) for d in shape), np.dtype(dtype), data))
        return len(self.tensors) - 1

    def const(self, name: str, value: np.ndarray) -> int:
        return self.tensor(name, value.shape, value.dtype, np.ascontiguousarray(value))

    def op(
        self,
        code: int,
        inputs: list[int],
        shape: Sequence[int],
        options: Options | None = None,
        name: str | None = None,
    ) -> int:
        """Add builtin operator ``code`` with one new float32 output; return the output index."""
        out = self.tensor(name or f"op{len(self.ops)}", shape)
        self.ops.append((code, inputs, out, options))
        return out

    def write(self, path: str | os.PathLike[str], inputs: list[int], outputs: list[int]) -> Path:
        """Serialize as a one-subgraph TFLite model (schema version 3) to ``path``."""
        b = flatbuffers.Builder(1024)

        def ints(values: Sequence[int]) -> int:
            return b.CreateNumpyVector(np.asarray(values, np.int32))

        def tables(offsets: list[int]) -> int:
            b.StartVector(4, len(offsets), 4)
            for offset in reversed(offsets):
                b.PrependUOffsetTRelative(offset)
            return b.EndVector()

        def table(name: str, fields: dict[str, Any]) -> int:  # e.g. TensorStart/TensorAddX/End
            getattr(tflite, f"{name}Start")(b)
            for key, value in fields.items():
                getattr(tflite, f"{name}Add{key}")(b, value)
            return getattr(tflite, f"{name}End")(b)

        buffers = [table("Buffer", {})]  # buffer 0: the empty sentinel of non-constant tensors
        tensors = []
        for name, shape, dtype, data in self.tensors:
            buffer = 0
            if data is not None:
                raw = data.tobytes()
                b.StartVector(1, len(raw), 16)  # 16-byte aligned, as the schema asks
                b.head -= len(raw)
                b.Bytes[b.head : b.head + len(raw)] = raw
                buffers.append(table("Buffer", {"Data": b.EndVector()}))
                buffer = len(buffers) - 1
            tensors.append(
                table(
                    "Tensor",
                    {
                        "Name": b.CreateString(name),
                        "Shape": ints(shape),
                        "Type": _TENSOR_TYPES[dtype],
                        "Buffer": buffer,
                    },
                )
            )
        codes = sorted({code for code, *_ in self.ops})
        operators = []
        for code, op_inputs, out, options in self.ops:
            fields: dict[str, Any] = {
                "OpcodeIndex": codes.index(code),
                "Inputs": ints(op_inputs),
                "Outputs": ints([out]),
            }
            if options is not None:
                fields["BuiltinOptionsType"] = getattr(BuiltinOptions, options[0])
                fields["BuiltinOptions"] = table(*options)
            operators.append(table("Operator", fields))
        subgraph = table(
            "SubGraph",
            {
                "Tensors": tables(tensors),
                "Inputs": ints(inputs),
                "Outputs": ints(outputs),
                "Operators": tables(operators),
                "Name": b.CreateString("main"),
            },
        )
        # Codes >= 127 live in builtin_code only; deprecated_builtin_code then holds 127.
        opcodes = [
            table(
                "OperatorCode",
                {"DeprecatedBuiltinCode": min(code, 127), "BuiltinCode": code, "Version": 1},
            )
            for code in codes
        ]
        model = table(
            "Model",
            {
                "Version": 3,
                "OperatorCodes": tables(opcodes),
                "Subgraphs": tables([subgraph]),
                "Description": b.CreateString("edge-pose test model"),
                "Buffers": tables(buffers),
            },
        )
        b.Finish(model, file_identifier=b"TFL3")
        path = Path(path)
        path.write_bytes(b.Output())
        return path


def write_channel_mean_model(
    path: str | os.PathLike[str],
    size: int = 192,
    input_dtype: Literal["float32", "uint8"] = "float32",
) -> Path:
    """A MoveNet stand-in: input ``[1, size, size, 3]`` (float32 or uint8), output
    ``[1, 1, 17, 3]`` float32 whose 17 rows all equal the per-channel mean of the input / 255.

    Ops: (CAST for uint8) -> MEAN over axes 1, 2 -> MUL by a ``[1, 1, 17, 3]`` constant of
    1/255, which also broadcasts the ``[1, 1, 1, 3]`` means to 17 rows.
    """
    dtype = np.dtype(input_dtype)
    if dtype not in (np.float32, np.uint8):
        raise ValueError(f"input_dtype must be float32 or uint8, not {input_dtype}")
    shape = (1, size, size, 3)
    g = _Graph()
    x = g.tensor("input", shape, dtype)
    image = x if dtype == np.float32 else g.op(Op.CAST, [x], shape)
    axes = g.const("axes", np.array([1, 2], np.int32))
    means = g.op(Op.MEAN, [image, axes], (1, 1, 1, 3), ("ReducerOptions", {"KeepDims": True}))
    scale = g.const("scale", np.full((1, 1, 17, 3), 1 / 255, np.float32))
    out = g.op(Op.MUL, [means, scale], (1, 1, 17, 3), name="output")
    return g.write(path, [x], [out])


def write_dense_softmax_model(
    path: str | os.PathLike[str],
    n_inputs: int = 51,
    n_classes: int = 3,
    weights: np.ndarray | None = None,
    bias: np.ndarray | Sequence[float] | None = None,
) -> Path:
    """A pose-classifier stand-in: input ``[1, n_inputs]`` float32 -> FULLY_CONNECTED -> SOFTMAX
    -> output ``[1, n_classes]`` float32, i.e. ``softmax(weights @ x + bias)``.

    ``weights`` has shape ``[n_classes, n_inputs]`` (default zeros) and ``bias`` ``[n_classes]``
    (default zeros); with both defaults every class scores ``1 / n_classes``.
    """
    w = (
        np.zeros((n_classes, n_inputs), np.float32)
        if weights is None
        else np.asarray(weights, np.float32)
    )
    b = np.zeros(n_classes, np.float32) if bias is None else np.asarray(bias, np.float32)
    if w.shape != (n_classes, n_inputs) or b.shape != (n_classes,):
        raise ValueError(
            f"weights {w.shape} / bias {b.shape} do not fit "
            f"{n_inputs} inputs and {n_classes} classes"
        )
    g = _Graph()
    x = g.tensor("input", (1, n_inputs))
    logits = g.op(
        Op.FULLY_CONNECTED,
        [x, g.const("weights", w), g.const("bias", b)],
        (1, n_classes),
        ("FullyConnectedOptions", {}),
    )
    out = g.op(
        Op.SOFTMAX, [logits], (1, n_classes), ("SoftmaxOptions", {"Beta": 1.0}), name="output"
    )
    return g.write(path, [x], [out])


def write_shape_model(
    path: str | os.PathLike[str], input_shape: Sequence[int], output_shape: Sequence[int]
) -> Path:
    """A float32 model of any input and output shapes: every output element is the mean of
    the whole input (MEAN over all axes to a scalar, then MUL by a constant of ones)."""
    g = _Graph()
    x = g.tensor("input", input_shape)
    axes = g.const("axes", np.arange(len(input_shape), dtype=np.int32))
    mean = g.op(Op.MEAN, [x, axes], (), ("ReducerOptions", {"KeepDims": False}))
    ones = g.const("ones", np.ones(tuple(output_shape), np.float32))
    out = g.op(Op.MUL, [mean, ones], output_shape, name="output")
    return g.write(path, [x], [out])
