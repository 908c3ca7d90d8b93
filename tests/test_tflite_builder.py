"""The generated test models load and run in the real LiteRT interpreter and compute what
their builders promise."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

import numpy as np
import pytest
from ai_edge_litert.interpreter import Interpreter
from tflite_builder import write_channel_mean_model, write_dense_softmax_model, write_shape_model


def run(path: Path, x: np.ndarray) -> tuple[dict[str, Any], dict[str, Any], np.ndarray]:
    """Input details, output details and the output of one invocation on ``x``."""
    interpreter = Interpreter(model_path=str(path), num_threads=2)
    interpreter.allocate_tensors()
    (inp,) = interpreter.get_input_details()
    (out,) = interpreter.get_output_details()
    interpreter.set_tensor(inp["index"], x.astype(inp["dtype"]))
    interpreter.invoke()
    return inp, out, interpreter.get_tensor(out["index"])


@pytest.mark.parametrize(("size", "dtype"), [(192, "uint8"), (192, "float32"), (256, "uint8")])
def test_channel_mean_model_is_movenet_shaped(
    tmp_path: Path, size: int, dtype: Literal["float32", "uint8"]
) -> None:
    image = np.empty((1, size, size, 3), dtype)
    image[...] = (10, 128, 255)
    inp, out, result = run(write_channel_mean_model(tmp_path / "m.tflite", size, dtype), image)
    assert list(inp["shape"]) == [1, size, size, 3] and inp["dtype"] == np.dtype(dtype)
    assert list(out["shape"]) == [1, 1, 17, 3] and out["dtype"] == np.float32
    expected = np.broadcast_to(np.array([10, 128, 255], np.float32) / 255, (1, 1, 17, 3))
    np.testing.assert_allclose(result, expected, rtol=1e-6)


def test_channel_mean_model_averages_the_whole_image(tmp_path: Path) -> None:
    image = np.random.default_rng(1).integers(0, 256, (1, 192, 192, 3), np.uint8)
    _, _, result = run(write_channel_mean_model(tmp_path / "m.tflite", input_dtype="uint8"), image)
    expected = image.mean(axis=(0, 1, 2)) / 255
    np.testing.assert_allclose(result[0, 0], np.tile(expected, (17, 1)), rtol=1e-5)


def test_channel_mean_model_rejects_other_input_types(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="input_dtype"):
        write_channel_mean_model(tmp_path / "m.tflite", input_dtype="int8")  # type: ignore[arg-type]


def test_dense_softmax_model_matches_numpy(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    weights = rng.normal(size=(4, 51)).astype(np.float32)
    bias = rng.normal(size=4).astype(np.float32)
    x = rng.normal(size=(1, 51)).astype(np.float32)
    path = write_dense_softmax_model(tmp_path / "c.tflite", 51, 4, weights, bias)
    inp, out, result = run(path, x)
    assert list(inp["shape"]) == [1, 51] and inp["dtype"] == np.float32
    assert list(out["shape"]) == [1, 4] and out["dtype"] == np.float32
    logits = weights @ x[0] + bias
    expected = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    np.testing.assert_allclose(result[0], expected, rtol=1e-4, atol=1e-7)


def test_dense_softmax_model_defaults_to_uniform_scores(tmp_path: Path) -> None:
    _, out, result = run(write_dense_softmax_model(tmp_path / "c.tflite"), np.ones((1, 51)))
    assert list(out["shape"]) == [1, 3]
    np.testing.assert_allclose(result, np.full((1, 3), 1 / 3), rtol=1e-6)


def test_dense_softmax_model_checks_weight_shapes(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="do not fit"):
        write_dense_softmax_model(tmp_path / "c.tflite", 51, 3, np.zeros((3, 34)))
    with pytest.raises(ValueError, match="do not fit"):
        write_dense_softmax_model(tmp_path / "c.tflite", 51, 3, bias=[0.0, 1.0])


@pytest.mark.parametrize(
    ("input_shape", "output_shape"),
    [
        ((1, 192, 192, 3), (1, 6, 56)),  # MultiPose-like output: not a single-pose MoveNet
        ((1, 224, 224, 3), (1, 1001)),  # an image classifier
        ((1, 34), (1, 3)),  # a classifier over 2D keypoints only
        ((1, 51), (1, 1, 17, 3)),  # same element count
    ],
)
def test_shape_model_has_the_requested_shapes(
    tmp_path: Path, input_shape: tuple[int, ...], output_shape: tuple[int, ...]
) -> None:
    x = np.arange(np.prod(input_shape), dtype=np.float32).reshape(input_shape)
    inp, out, result = run(write_shape_model(tmp_path / "s.tflite", input_shape, output_shape), x)
    assert tuple(inp["shape"]) == input_shape and inp["dtype"] == np.float32
    assert tuple(out["shape"]) == output_shape and out["dtype"] == np.float32
    np.testing.assert_allclose(result, np.full(output_shape, x.mean()), rtol=1e-5)
