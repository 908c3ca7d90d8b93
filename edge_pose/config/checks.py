"""The `edge-pose doctor` check of the config: the file loads and validates as `run` loads it
(the problems are the loader's own lines, as `edge-pose validate` prints them)."""

from __future__ import annotations

from edge_pose.doctor import Check, Context


def config_file(ctx: Context) -> Check:
    where = str(ctx.config_file or "built-in defaults")
    if ctx.cfg is None:
        return Check(
            "config",
            "fail",
            # the loader's lines already name the file, except for flags and defaults
            ctx.config_problems[0]
            if ctx.config_problems[0].startswith(where)
            else f"{where}: {ctx.config_problems[0]}",
            "fix the lines listed by `edge-pose validate`",
            {"file": where, "problems": ctx.config_problems},
        )
    return Check("config", "ok", f"{where} is valid", data={"file": where})
