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

# Distribution name -> the module holding its Interpreter, in the order "auto" tries them.
RUNTIMES = {
    "ai-edge-litert": "ai_edge_litert.interpreter",
    "tflite-runtime": "tflite_runtime.interpreter",
    "tensorflow": "tensorflow.lite",
}


@dataclass(frozen=True)
class Runtime:
    """The interpreter module in use, its distribution and version."""

    module: ModuleType
    name: str
    version: str

    def __str__(self) -> str:
        return f"{self.name} {self.version}"


@functools.cache
def resolve_runtime(preferred: str = "auto") -> Runtime:
    """The runtime ``model.runtime`` asks for: "auto" is the first that imports (LiteRT, then
    tflite-runtime, then TensorFlow); a named one must be installed. Clear error otherwise."""
    names = list(RUNTIMES) if preferred == "auto" else [preferred]
    for dist in names:
        try:
            module = importlib.import_module(RUNTIMES[dist])
        except ImportError as error:
            if _interrupted(error):
                raise KeyboardInterrupt from None
            continue
        try:
            version = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            version = "unknown"
        return Runtime(module, dist, version)
    if preferred != "auto":
        raise EdgePoseError(
            f"model.runtime = {preferred!r} is not installed: run `pip install {preferred}` in "
            'edge-pose\'s venv, or set model.runtime = "auto"'
        )
    raise EdgePoseError(
        "no TFLite runtime found: run `pip install ai-edge-litert` in edge-pose's venv "
        "(or `pip install tflite-runtime` for the Coral pairing on Bookworm)"
    )


def _interrupted(error: BaseException) -> bool:
    """Whether an ImportError is really Ctrl-C: pybind11 turns any exception raised while an
    extension module initialises, KeyboardInterrupt included, into ``ImportError:
    initialization failed``. Without this check Ctrl-C during start-up would read as "no TFLite
    runtime found"."""
    seen: BaseException | None = error
    for _ in range(8):  # a short chain; bounded in case of a cycle
        if seen is None:
            return False
        if isinstance(seen, KeyboardInterrupt):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


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


def make_interpreter(
    model_path: str,
    threads: int,
    delegates: list[Any] | None = None,
    runtime: str = "auto",
    *,
    allocate: bool = True,
) -> Any:
    """A TFLite interpreter (XNNPACK on the CPU) with tensors allocated (unless ``allocate`` is
    False: enough to read its tensors' shapes), created quietly."""
    interpreter_module = resolve_runtime(runtime).module
    with quiet_stderr():
        interpreter = interpreter_module.Interpreter(
            model_path=model_path, num_threads=threads, experimental_delegates=delegates
        )
        if allocate:
            interpreter.allocate_tensors()
    return interpreter
