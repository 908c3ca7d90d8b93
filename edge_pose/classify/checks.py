"""The `edge-pose doctor` check of the pose classifier: a trained one loads as the pipeline
loads it (``load_trained_classifier``), and its labels let reps count (``unreachable_reps``,
the same rule the pipeline warns about at start)."""

from __future__ import annotations

from edge_pose.doctor import Check, Context, not_checked
from edge_pose.errors import EdgePoseError


def classifier(ctx: Context) -> Check:
    """The configured pose classifier loads (a trained file exists and is readable)."""
    if ctx.cfg is None:
        return not_checked("classifier")
    kind = ctx.cfg.classifier.type
    if kind in ("none", "rules"):
        what = "no pose labels" if kind == "none" else "the built-in pose rules"
        return Check("classifier", "ok", f"{kind}: {what}", data={"type": kind})
    from edge_pose.classify import load_trained_classifier
    from edge_pose.classify.events import unreachable_reps

    data = {"type": kind, "path": ctx.cfg.classifier.path}
    try:
        trained = load_trained_classifier(ctx.cfg.classifier)
    except EdgePoseError as exc:
        return Check(
            "classifier",
            "fail",
            str(exc).splitlines()[0],
            "set classifier.path to a trained classifier (edge-pose classifier train) "
            'or classifier.type = "rules"',
            data,
        )
    labels = ", ".join(trained.labels)
    summary = f"{kind} {ctx.cfg.classifier.path}: {labels}"
    if (reason := unreachable_reps(ctx.cfg.classifier, trained.labels)) is not None:
        return Check("classifier", "warn", f"{summary}; reps never count", reason, data)
    return Check("classifier", "ok", summary, data=data)
