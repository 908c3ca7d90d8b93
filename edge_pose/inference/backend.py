"""Choosing where the model runs (CPU with XNNPACK, or a Coral Edge TPU) and loading it there."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_pose.config import Config, load_config
from edge_pose.errors import EdgePoseError, ModelError
from edge_pose.inference.models import catalog, default_model_dir, resolve_model
from edge_pose.inference.movenet import MoveNet
from edge_pose.inference.runtime import resolve_runtime

log = logging.getLogger(__name__)

EDGETPU_LIBRARY = "libedgetpu.so.1"


@dataclass(frozen=True)
class Backend:
    """What runs the model: ``cpu`` or ``edgetpu``, the delegate, the runtime, and why."""

    kind: str
    delegate: str
    runtime: str
    reason: str


def load_estimator(model_cfg: Any) -> tuple[MoveNet, Backend, str]:
    """Load the configured model on the configured backend; returns the model, backend and name.

    ``auto`` runs on the CPU: Edge TPU detection is not part of this build, so an Edge TPU must
    be asked for with ``backend = "edgetpu"``.
    """
    runtime = str(resolve_runtime())
    model_dir = default_model_dir(model_cfg.dir)
    name = model_cfg.name
    if model_cfg.backend == "edgetpu":
        info = catalog().get(name)
        if info is not None and info.backend == "cpu" and info.twin:
            name = info.twin
        path, info = resolve_model(name, model_dir)
        delegate = _edgetpu_delegate(model_cfg.device)
        model = MoveNet(path, threads=model_cfg.threads, delegates=[delegate])
        device = model_cfg.device or "first found"
        return (
            model,
            Backend("edgetpu", f"{EDGETPU_LIBRARY} ({device})", runtime, "configured"),
            name,
        )
    path, info = resolve_model(name, model_dir)
    if info is not None and info.backend == "edgetpu":
        raise ModelError(
            f'model {name!r} is compiled for the Coral Edge TPU: set model.backend = "edgetpu" '
            f"or use its CPU build {info.twin!r}"
        )
    # More threads than cores only makes XNNPACK's workers wait for each other.
    threads = min(model_cfg.threads, os.cpu_count() or model_cfg.threads)
    model = MoveNet(path, threads=threads, cpu_twin=info.twin if info else None)
    reason = "configured" if model_cfg.backend == "cpu" else "auto: CPU (Edge TPU not requested)"
    return model, Backend("cpu", f"XNNPACK, {threads} threads", runtime, reason), name


def _edgetpu_delegate(device: str) -> Any:
    """The libedgetpu delegate for ``device`` (usb, usb:N, pci, pci:N or "" for the first)."""
    options = {"device": device} if device else {}
    try:
        return resolve_runtime().module.load_delegate(EDGETPU_LIBRARY, options)
    except (ValueError, OSError, AttributeError) as exc:
        raise EdgePoseError(
            f"cannot load the Edge TPU delegate {EDGETPU_LIBRARY} for device "
            f"{device or 'any'}: {exc}; install libedgetpu1-std, plug the Coral in, and check "
            'the user is in the plugdev group (or set model.backend = "cpu")'
        ) from exc


def load_configured_model(
    config_path: Path | None, **flags: Any
) -> tuple[Config, MoveNet, Backend, str]:
    """Config plus model for the commands that need only the model (estimate, bench, training).

    ``flags`` are the model flags a command was given (``name``, ``threads``, ``backend``);
    None means not given, so the config (or its default) applies.
    """
    overrides = {f"model.{key}": value for key, value in flags.items() if value is not None}
    cfg = load_config(config_path, overrides)
    model, backend, name = load_estimator(cfg.model)
    return cfg, model, backend, name
