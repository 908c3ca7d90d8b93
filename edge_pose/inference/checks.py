"""`edge-pose doctor` checks of inference: the TFLite runtime, numpy, the configured model
(and its Edge TPU build where one would be used) and the Edge TPU.

The runtime is found as the model loader finds it (edge_pose.inference.runtime); a catalog
model is checked against the manifest's checksum (edge_pose.inference.models) and any other
file sorted as the backend sorts it (``model_build``); the Edge TPU findings are
edge_pose.inference.edgetpu's own diagnosis, which looks at sysfs and the library without
opening the device.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from edge_pose.doctor import Check, Context, Status, not_checked
from edge_pose.errors import EdgePoseError
from edge_pose.inference import edgetpu
from edge_pose.inference.runtime import Runtime, resolve_runtime

# The doctor's names of the Edge TPU findings.
_TPU_NAMES = {
    "delegate library": "libedgetpu",
    "device": "edge tpu",
    "permission": "tpu access",
    "versions": "tpu versions",
}


def runtime(_ctx: Context) -> Check:
    try:
        found = resolve_runtime()
    except EdgePoseError as exc:
        return Check("runtime", "fail", str(exc), "pip install ai-edge-litert")
    data = {"name": found.name, "version": found.version}
    return Check("runtime", "ok", str(found), data=data)


def numpy_version(_ctx: Context) -> Check:
    import numpy as np

    return Check("numpy", "ok", f"numpy {np.__version__}", data={"version": np.__version__})


def models(ctx: Context) -> list[Check]:
    """The configured model for the CPU, and its Edge TPU build: required with backend
    edgetpu, a warning with auto when a Coral is plugged in."""
    if ctx.cfg is None:
        return [not_checked("model")]
    from edge_pose.inference.models import default_model_dir

    model_dir = default_model_dir(ctx.cfg.model.dir)
    backend = ctx.backend
    tpu_present = bool(ctx.tpu_devices())
    needs = {"cpu": [("cpu", True)], "edgetpu": [("edgetpu", True)]}.get(
        backend, [("cpu", True), ("edgetpu", False)] if tpu_present else [("cpu", True)]
    )
    return [_model(ctx.cfg.model.name, kind, required, model_dir) for kind, required in needs]


def _model(name: str, kind: str, required: bool, model_dir: Path) -> Check:
    from edge_pose.inference.backend import model_build
    from edge_pose.inference.models import catalog, fetch_command, verify

    label = "model" if kind == "cpu" else "model (tpu)"
    bad: Status = "fail" if required else "warn"
    info = catalog().get(name)
    target = (name if info.backend == kind else info.twin) if info is not None else ""
    if target:
        result = verify(model_dir, [target])[0]
        data = {"name": target, "path": str(result.path), "status": result.status}
        if result.status in ("ok", "unpinned"):
            return Check(label, "ok", f"{target}: {result.detail}", data=data)
        fix = fetch_command(target, model_dir)
        return Check(label, bad, f"{target} at {result.path}: {result.detail}", fix, data)
    try:
        build, path = model_build(kind, name, model_dir)
    except EdgePoseError as exc:
        return Check(label, bad, str(exc), "see docs/coral.md, models", {"name": name})
    return Check(label, "ok", f"{build} ({path})", data={"name": build, "path": str(path)})


def edge_tpu(ctx: Context) -> list[Check]:
    """Library, devices, access, versions. Required with backend edgetpu; with auto, a Coral
    that is present but unusable is a warning (auto runs on the CPU); otherwise context."""
    try:
        found: Runtime | None = resolve_runtime()
    except EdgePoseError:
        found = None
    d = ctx.diagnose(found)
    backend = ctx.backend
    unbound = edgetpu.pci_without_driver(d.settings.sysfs_root)
    if backend == "edgetpu":
        bad: Status = "fail"
    elif backend == "auto" and (d.devices or unbound):
        bad = "warn"  # a Coral is there but auto cannot use it: it runs, on the CPU
    else:
        bad = "info"
    checks = []
    for f in d.findings:
        status: Status = "ok" if f.ok else (bad if f.ok is False else "info")
        summary = f.detail
        if f.name == "device" and not d.devices and not unbound and backend != "edgetpu":
            looked = edgetpu.looked_for(d.settings)
            status, summary = "info", f"none found, so the CPU is used ({looked})"
        if f.name == "delegate library" and f.ok is False and status == "info":
            summary += " (only needed with a Coral)"
        checks.append(Check(_TPU_NAMES.get(f.name, f.name), status, summary, f.fix))
    checks[0].data = {
        "path": d.library.path,
        "package": d.library.package,
        "runtime_version": d.library.runtime_version,
        "looked_in": list(d.library.looked_in),
    }
    checks[1].data = {
        "devices": [asdict(dev) | {"name": dev.name} for dev in d.devices],
        "chosen": d.chosen.name if d.chosen else None,
        "requested": d.settings.device,
        "backend": backend,
        "pycoral": edgetpu.list_edge_tpus(),
    }
    checks[3].data = asdict(d.pairing)
    return checks
