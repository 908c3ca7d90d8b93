"""Choosing where the model runs (CPU with XNNPACK, or a Coral Edge TPU) and loading it there.

- ``cpu``: the CPU build of the configured model. An ``_edgetpu`` build is refused with a
  message naming its CPU twin: without the delegate it cannot run at all.
- ``edgetpu``: the Edge TPU build (the catalog's twin of a CPU model), with the libedgetpu
  delegate. Anything that stops it fails before the pipeline starts, with the checklist of
  :func:`edge_pose.inference.edgetpu.diagnose` (library, device, permission, versions).
- ``auto``: the Edge TPU when one is present and its delegate and model load, else the CPU; the
  reason is logged once and kept in ``Backend.reason`` (status file, ``bench``). With no device
  present nothing is loaded or probed, so CPU-only users pay nothing for it.

Which class runs a model is a table, :data:`ESTIMATORS`, keyed by the manifest's ``kind`` (a model
file outside the catalog is run by the kind whose tensors it has): a new kind of model is its
estimator module, one line here and its manifest entries. Whatever the kind, on the Edge TPU it is
wrapped in :class:`EdgeTpuEstimator`, so a device that fails while running raises
:class:`~edge_pose.inference.edgetpu.EdgeTpuLost` from ``estimate``; :func:`fallback_after_loss` is
what the daemon calls with it. """

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_pose.config import Config, ModelConfig, load_config
from edge_pose.errors import ModelError
from edge_pose.inference.edgetpu import (
    DelegateError,
    EdgeTpuLost,
    EdgeTpuUnavailable,
    Finding,
    Settings,
    diagnose,
    find_devices,
    is_edgetpu_model,
    load_delegate,
    probe,
)
from edge_pose.inference.estimator import (
    Detection,
    EstimatorClass,
    LoadsModel,
    PoseEstimator,
    Wrapped,
)
from edge_pose.inference.models import (
    DEFAULT_KIND,
    ModelInfo,
    catalog,
    default_model_dir,
    resolve_model,
)
from edge_pose.inference.movenet import MoveNet
from edge_pose.inference.multipose import MoveNetMulti
from edge_pose.inference.runtime import Runtime, resolve_runtime
from edge_pose.inference.tflite_model import peek
from edge_pose.pose import Region

log = logging.getLogger(__name__)

_logged: set[str] = set()

# Model kind (manifest ``kind``) -> the class that runs it.
ESTIMATORS: dict[str, EstimatorClass] = {
    "movenet_single": MoveNet,
    "movenet_multi": MoveNetMulti,
}


@dataclass(frozen=True)
class Backend:
    """What runs the model: ``cpu`` or ``edgetpu``, the delegate, the runtime, and why."""

    kind: str
    delegate: str
    runtime: str
    reason: str


class EdgeTpuEstimator(Wrapped):
    """Any estimator running on an Edge TPU: a failing ``invoke`` (device unplugged or reset)
    becomes :class:`EdgeTpuLost`, one exception type the daemon can act on."""

    def __init__(self, estimator: PoseEstimator, device: str) -> None:
        super().__init__(estimator)
        self.device = device

    def estimate(self, image: np.ndarray, region: Region | None = None) -> list[Detection]:
        try:
            return self.inner.estimate(image, region)
        except (RuntimeError, ValueError, OSError) as exc:
            raise EdgeTpuLost(self.device or "(any)", exc) from exc


def load_estimator(model_cfg: ModelConfig) -> tuple[PoseEstimator, Backend, str]:
    """Load the configured model on the configured backend; returns the model, backend and name."""
    runtime = resolve_runtime(model_cfg.runtime)
    model_dir = default_model_dir(model_cfg.dir)
    settings = Settings.from_config(model_cfg)
    if model_cfg.backend == "cpu":
        return _load_cpu(model_cfg, model_cfg.name, model_dir, runtime, "configured")
    if model_cfg.backend == "edgetpu":
        return _load_edgetpu(model_cfg, settings, model_dir, runtime, "configured")
    return _load_auto(model_cfg, settings, model_dir, runtime)


def fallback_after_loss(
    model_cfg: ModelConfig, lost: EdgeTpuLost
) -> tuple[PoseEstimator, Backend, str]:
    """What the daemon does when the Edge TPU fails mid-run, per ``model.on_delegate_failure``.

    ``"exit"`` re-raises ``lost`` (exit code 1: systemd restarts the service, and ``auto`` then
    picks whatever works). ``"fallback"`` (default) loads the CPU build and returns it with a
    ``Backend.reason`` that says what happened, so status shows it until the next restart.
    """
    settings = Settings.from_config(model_cfg)
    if settings.on_failure == "exit":
        log.error('%s; exiting (model.on_delegate_failure = "exit")', lost)
        raise lost
    model_dir = default_model_dir(model_cfg.dir)
    name, _ = model_build("cpu", model_cfg.name, model_dir)
    reason = f"fallback: {lost}; on the CPU until restarted"
    log.error(
        '%s; continuing on the CPU with %s (model.on_delegate_failure = "fallback")', lost, name
    )
    return _load_cpu(model_cfg, name, model_dir, resolve_runtime(model_cfg.runtime), reason)


# --------------------------------------------------------------------------- the backends


def estimator_class(info: ModelInfo | None) -> LoadsModel:
    """The class that runs a model of the catalog's ``kind``; a file outside the catalog (a
    model built or trained by the user) is run by the kind whose tensors it has."""
    if info is None:
        return _kind_by_tensors
    if info.kind not in ESTIMATORS:
        raise ModelError(
            f"model {info.name!r} is of kind {info.kind!r}, which this edge-pose cannot run "
            f"(it runs {', '.join(ESTIMATORS)}): update edge-pose, or choose another model"
        )
    return ESTIMATORS[info.kind]


def _kind_by_tensors(
    model_path: Path,
    *,
    threads: int,
    delegates: list[object] | None,
    cpu_twin: str | None,
    runtime: str,
) -> PoseEstimator:
    """The kind whose tensors the file has (its tensors read first, so it is loaded once);
    none: single-pose's error, which names the other kind too."""
    try:
        shape, dtype, out_shapes = peek(model_path, runtime)
    except ValueError:  # not a TFLite file: single-pose's loading says so in its words
        shape, dtype, out_shapes = (), np.dtype(np.uint8), []
    kinds = [cls for cls in ESTIMATORS.values() if cls.takes(shape, dtype, out_shapes)]
    load = kinds[0] if kinds else ESTIMATORS[DEFAULT_KIND]
    return load(
        model_path, threads=threads, delegates=delegates, cpu_twin=cpu_twin, runtime=runtime
    )


def _load_cpu(
    model_cfg: ModelConfig, name: str, model_dir: Path, runtime: Runtime, reason: str
) -> tuple[PoseEstimator, Backend, str]:
    path, info = resolve_model(name, model_dir)
    if info is not None and info.backend == "edgetpu":
        raise ModelError(
            f'model {name!r} is compiled for the Coral Edge TPU: set model.backend = "edgetpu" '
            f'(or "auto") or use its CPU build {info.twin!r}'
        )
    threads = _threads(model_cfg)
    model = estimator_class(info)(
        path, threads=threads, delegates=None, cpu_twin=info.twin if info else None,
        runtime=runtime.name,
    )  # fmt: skip
    return model, Backend("cpu", f"XNNPACK, {threads} threads", str(runtime), reason), name


def _load_edgetpu(
    model_cfg: ModelConfig, settings: Settings, model_dir: Path, runtime: Runtime, reason: str
) -> tuple[PoseEstimator, Backend, str]:
    """The Edge TPU build on the Edge TPU, or EdgeTpuUnavailable listing what was checked.

    ``reason`` "" means auto: the reason then names the device found."""
    diagnosis = diagnose(settings, runtime)
    findings = list(diagnosis.findings)
    try:
        name, path = model_build("edgetpu", model_cfg.name, model_dir)
        make_estimator = estimator_class(resolve_model(name, model_dir)[1])
    except ModelError as exc:
        findings.append(Finding("model", False, str(exc)))
        raise EdgeTpuUnavailable(findings) from None
    findings.append(Finding("model", True, f"{name} ({path})"))
    if not diagnosis.usable or diagnosis.chosen is None:
        raise EdgeTpuUnavailable(findings)
    device = diagnosis.chosen.name
    if diagnosis.pairing.status != "known":
        failure = probe(diagnosis.library.path, device, path, runtime=runtime.name)
        if failure is not None:
            findings.append(Finding("delegate", False, failure, diagnosis.pairing.fix))
            raise EdgeTpuUnavailable(findings)
    try:
        delegate = load_delegate(runtime, diagnosis.library, device)
        estimator = make_estimator(
            path, threads=_threads(model_cfg), delegates=[delegate], cpu_twin=None,
            runtime=runtime.name,
        )  # fmt: skip
    except (DelegateError, ModelError) as exc:
        findings.append(Finding("delegate", False, str(exc), diagnosis.pairing.fix))
        raise EdgeTpuUnavailable(findings) from exc
    model = EdgeTpuEstimator(estimator, device)
    lib, ids = diagnosis.library, diagnosis.chosen.ids
    # "16.0tf2.17.1-1.bookworm", else the "RuntimeVersion(14)" of edgetpu_version()
    version = lib.package_version or lib.runtime_version.rpartition(", ")[2]
    delegate_text = f"{lib.name}{f' {version}' if version else ''} ({device} {ids})"
    reason = reason or f"auto: Edge TPU {device} ({ids}) found"
    return model, Backend("edgetpu", delegate_text, str(runtime), reason), name


def _load_auto(
    model_cfg: ModelConfig, settings: Settings, model_dir: Path, runtime: Runtime
) -> tuple[PoseEstimator, Backend, str]:
    devices = find_devices(settings.sysfs_root)
    if not devices:
        return _cpu_for_auto(model_cfg, model_dir, runtime, "auto: no Edge TPU found")
    info = catalog().get(model_cfg.name)
    if info is not None and info.backend == "cpu" and not info.twin:
        # A choice, not a failure: an info line, not the warning of a Coral that does not work.
        reason = f"auto: {info.name} has no Edge TPU build"
        _log_once(logging.INFO, f"{reason}: running on the CPU")
        return _cpu_for_auto(model_cfg, model_dir, runtime, reason, device_found=True)
    try:
        model, backend, name = _load_edgetpu(model_cfg, settings, model_dir, runtime, "")
    except EdgeTpuUnavailable as exc:
        reason = f"auto: Edge TPU present but not usable ({exc.failure})"
        _log_once(logging.WARNING, f"{reason}; running on the CPU (`edge-pose doctor` says more)")
        return _cpu_for_auto(model_cfg, model_dir, runtime, reason, device_found=True)
    _log_once(logging.DEBUG, backend.reason)  # the daemon's "model ... on" line says it
    return model, backend, name


def _cpu_for_auto(
    model_cfg: ModelConfig,
    model_dir: Path,
    runtime: Runtime,
    reason: str,
    *,
    device_found: bool = False,
) -> tuple[PoseEstimator, Backend, str]:
    """The CPU build for ``backend = "auto"``. With ``device_found`` an Edge TPU was there but
    not usable (already logged as a warning): a CPU model error then says both."""
    try:
        name, _ = model_build("cpu", model_cfg.name, model_dir)
    except ModelError as exc:
        if not device_found:
            raise  # no Edge TPU at all: the CPU was the only choice, its error says it all
        raise ModelError(f"{reason}, and the CPU build is not available: {exc}") from exc
    if not device_found:
        _log_once(logging.DEBUG, f"{reason}: running on the CPU")
    return _load_cpu(model_cfg, name, model_dir, runtime, reason)


# --------------------------------------------------------------------------- which file


def model_build(kind: str, name: str, model_dir: Path) -> tuple[str, Path]:
    """The configured model built for ``kind`` (cpu | edgetpu): its name and file.

    A catalog name maps through the catalog's twin; a path to a catalog file finds its twin
    beside it; any other file is sorted by whether it holds the Edge TPU custom op, its twin
    being ``NAME_edgetpu.tflite`` beside it (edgetpu_compiler's naming). Raises ModelError
    saying what to fetch or compile.
    """
    models = catalog()
    if name in models:
        entry = models[name]
        target = name if entry.backend == kind else entry.twin
        if not target:
            raise ModelError(f"model {name!r} has no {kind} build in the catalog")
        path, _ = resolve_model(target, model_dir)
        return target, path
    path, info = resolve_model(name, model_dir)
    if info is not None:
        if info.backend == kind:
            return name, path
        twin = models[info.twin] if info.twin else None
        if twin is None:
            raise ModelError(f"{path} ({info.name}) has no {kind} build in the catalog")
        twin_path = path.with_name(twin.file)
        if not twin_path.is_file():
            raise ModelError(
                f"{path} is the {info.backend} build of {info.name}; its {kind} build "
                f"{twin.file} is not beside it: put it there, or set model.name = "
                f"{info.name!r} and run `edge-pose models fetch {twin.name}`"
            )
        return str(twin_path), twin_path
    compiled = is_edgetpu_model(path)
    if compiled == (kind == "edgetpu"):
        return name, path
    stem = path.stem
    twin_path = path.with_name(
        f"{stem.removesuffix('_edgetpu')}.tflite" if compiled else f"{stem}_edgetpu.tflite"
    )
    if twin_path.is_file():
        return str(twin_path), twin_path
    what = "compiled for the Edge TPU" if compiled else "not compiled for the Edge TPU"
    fix = (
        "use its CPU build" if compiled else "compile it with edgetpu_compiler"
    ) + f" ({twin_path.name} beside it), or use a catalog model"
    raise ModelError(f"model file {path} is {what}: {fix}")


def _threads(model_cfg: ModelConfig) -> int:
    # More threads than cores only makes XNNPACK's workers wait for each other.
    return min(model_cfg.threads, os.cpu_count() or model_cfg.threads)


def _log_once(level: int, message: str) -> None:
    """The backend choice is logged once per process, not on every SIGHUP reload. Only a Coral
    that is present but unusable is a warning; the daemon's INFO line "model ... on cpu: ...
    (reason)" already carries the reason, and estimate/bench print the backend themselves."""
    if message not in _logged:
        _logged.add(message)
        log.log(level, "%s", message)


def load_configured_model(
    config_path: Path | None, *, refine: bool = False, **flags: str | int | None
) -> tuple[Config, PoseEstimator, Backend, str]:
    """Config plus model for the commands that need only the model (estimate, bench, training).

    ``flags`` are the model flags a command was given (``name``, ``threads``, ``backend``);
    None means not given, so the config (or its default) applies. With ``refine`` (the bench,
    which measures what ``run`` runs) ``tracking.refine`` applies too; ``estimate`` looks at a
    still its own way.
    """
    from edge_pose.inference.refine import refined

    overrides = {f"model.{key}": value for key, value in flags.items() if value is not None}
    cfg = load_config(config_path, overrides)
    model, backend, name = load_estimator(cfg.model)
    return cfg, refined(model, cfg) if refine else model, backend, name
