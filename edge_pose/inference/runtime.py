"""Which TFLite runtime runs the model, and creating interpreters quietly.

LiteRT (``ai_edge_litert``) is the maintained runtime with wheels for Python 3.11-3.13 on
x86_64 and aarch64. ``tflite_runtime`` is still what Coral's libedgetpu builds pair with on
Bookworm, and ``tensorflow.lite`` is there on developer machines: use the first that imports.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import importlib.metadata
import os
from collections.abc import Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from edge_pose.errors import EdgePoseError

# (import path of the interpreter module, distribution that carries it)
_CANDIDATES = (
    ("ai_edge_litert.interpreter", "ai-edge-litert"),
    ("tflite_runtime.interpreter", "tflite-runtime"),
    ("tensorflow.lite", "tensorflow"),
)


@dataclass(frozen=True)
class Runtime:
    """The interpreter module in use, its distribution and version."""

    module: ModuleType
    name: str
    version: str

    def __str__(self) -> str:
        return f"{self.name} {self.version}"


@functools.cache
def resolve_runtime() -> Runtime:
    """The first available TFLite runtime; a clear error naming the install command."""
    for module_name, dist in _CANDIDATES:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        try:
            version = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            version = "unknown"
        return Runtime(module, dist, version)
    raise EdgePoseError(
        "no TFLite runtime found: run `pip install ai-edge-litert` in edge-pose's venv "
        "(or `pip install tflite-runtime` for the Coral pairing on Bookworm)"
    )


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """Hide what the C++ runtime prints on fd 2 (``INFO: Created TensorFlow Lite XNNPACK
    delegate``) while interpreters are created: users should see our messages, not its chatter."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    try:
        with open(os.devnull, "wb") as devnull:
            os.dup2(devnull.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def make_interpreter(model_path: str, threads: int, delegates: list[Any] | None = None) -> Any:
    """A TFLite interpreter (XNNPACK on the CPU) with tensors allocated, created quietly."""
    runtime = resolve_runtime()
    with quiet_stderr():
        interpreter = runtime.module.Interpreter(
            model_path=model_path, num_threads=threads, experimental_delegates=delegates
        )
        interpreter.allocate_tensors()
    return interpreter
