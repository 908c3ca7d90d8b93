"""`edge-pose config show | set`: print the effective configuration, change keys in the file.

The editing (validated first, atomic, comments kept) and the reload are
edge_pose.config_edit's; this module turns their outcomes into messages and exit codes: an
invalid value is exit 78 with ``nothing written``, a malformed ``KEY=VALUE`` exit 2, a file
that cannot be written exit 1. A value `run` would refuse on this machine only (a camera file
not here, a model not installed) is written with a warning: the device may differ from the
machine editing its config.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from edge_pose.errors import EX_CONFIG, EX_FAILURE, EX_OK, EX_USAGE, ConfigError, EdgePoseError

if TYPE_CHECKING:
    from edge_pose.commands import Subparsers


def add_parser(subparsers: Subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "config",
        help="show or change the configuration",
        description="Show the effective configuration or change keys in the config file.",
    )
    actions = parser.add_subparsers(dest="config_command", metavar="{show,set}", required=True)
    show = actions.add_parser(
        "show",
        help="print the effective configuration",
        description="Print the effective configuration as TOML (keys that differ from the "
        "built-in defaults marked) or JSON.",
    )
    show.add_argument(
        "--config", type=Path, help="config file (default /etc/edge-pose/config.toml)"
    )
    show.add_argument("--json", action="store_true", help="print JSON instead of TOML")
    show.add_argument("--defaults", action="store_true", help="print the built-in defaults instead")
    change = actions.add_parser(
        "set",
        help="change keys in the config file (validated first, comments kept)",
        description="Set section.key=value in the config file. The result is validated before "
        "it is written (invalid: exit 78, file unchanged); the file is replaced atomically and "
        "its comments are kept. A missing file is created from the documented defaults.",
    )
    change.add_argument(
        "--config", type=Path, help="config file (default /etc/edge-pose/config.toml)"
    )
    change.add_argument(
        "--reload", action="store_true", help="then tell the running daemon (SIGHUP)"
    )
    change.add_argument(
        "assignments", nargs="+", metavar="KEY=VALUE", help="e.g. mqtt.host=broker.lan"
    )
    return parser


def run(args: argparse.Namespace) -> int:
    return _show(args) if args.config_command == "show" else _set(args)


def _set(args: argparse.Namespace) -> int:
    """`config set [--config FILE] [--reload] KEY=VALUE...`"""
    from edge_pose.config import DEFAULT_CONFIG_PATH, config_path, run_warnings
    from edge_pose.config_edit import parse_assignment, reload_daemon, set_values

    path = config_path(args.config) or DEFAULT_CONFIG_PATH
    try:
        path, created, cfg = set_values(path, args.assignments)
    except ValueError as exc:
        print(f"edge-pose: error: config set: {exc}", file=sys.stderr)
        return EX_USAGE
    except ConfigError as exc:
        for line in exc.problems:
            if any(line.startswith(f"{key} = ") for key in _unquoted(args.assignments)):
                line = line.replace(" (remove the quotes)", "")  # the user wrote no quotes
            print(f"edge-pose: error: {line}", file=sys.stderr)
        print(f"edge-pose: nothing written to {path}", file=sys.stderr)
        return exc.exit_code
    except EdgePoseError as exc:
        print(f"edge-pose: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        print(f"edge-pose: error: cannot write {path}: {exc.strerror or exc}", file=sys.stderr)
        return EX_FAILURE
    keys = ", ".join(parse_assignment(a)[0] for a in args.assignments)
    print(f"{'created' if created else 'updated'} {path}: {keys}")
    for line in run_warnings(cfg):
        print(f"edge-pose: warning: {line}", file=sys.stderr)
    if not args.reload:
        return EX_OK
    code, message = reload_daemon(cfg)
    print(message, file=sys.stdout if code == EX_OK else sys.stderr)
    return code


def _unquoted(assignments: Sequence[str]) -> set[str]:
    """Keys whose value was not a quoted string on the command line."""
    from edge_pose.config_edit import parse_assignment

    keys = set()
    for item in assignments:
        with contextlib.suppress(ValueError):
            key, text = parse_assignment(item)
            if not text.startswith(("'", '"')):
                keys.add(key)
    return keys


def _show(args: argparse.Namespace) -> int:
    """`config show [--config FILE] [--json] [--defaults]`"""
    import tomllib

    from edge_pose.config import Config, config_path, load_config, read_config_text, to_toml_dict
    from edge_pose.config_edit import changed_keys, effective_toml

    try:
        if args.defaults:
            path, cfg, changed = None, Config(), set()
        else:
            path = config_path(args.config)
            cfg = load_config(path)
            changed = (
                changed_keys(tomllib.loads(read_config_text(path))) if path is not None else set()
            )
    except ConfigError as exc:
        for line in exc.problems:
            print(f"edge-pose: error: {line}", file=sys.stderr)
        return exc.exit_code
    except Exception as exc:  # Config() with an unusable host name
        print(f"edge-pose: error: {exc}", file=sys.stderr)
        return EX_CONFIG
    if args.json:
        data = to_toml_dict(cfg)
        doc = {"path": str(path) if path else None, "changed": sorted(changed), "config": data}
        print(json.dumps(doc, indent=2))
    else:
        print(effective_toml(cfg, path, changed))
    return EX_OK
