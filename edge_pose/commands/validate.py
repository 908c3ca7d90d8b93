"""`edge-pose validate`: the config file and the flags on top of it, checked as `run` loads them.

Invalid (a key, a value, a file that is not there): exit 78 with one line per problem. What
`run` would refuse on this machine only (see ``run_warnings``) is a warning on stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from edge_pose.commands.run import add_override_flags, overrides
from edge_pose.errors import EX_OK, ConfigError

if TYPE_CHECKING:
    from edge_pose.commands import Subparsers


def add_parser(subparsers: Subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser(
        "validate", help="check a config file and the flags on top of it"
    )
    add_override_flags(parser)
    parser.add_argument("--json", action="store_true")
    return parser


def run(args: argparse.Namespace) -> int:
    from edge_pose.config import config_path, file_problems, load_config, run_warnings, to_toml_dict

    cfg = load_config(args.config, overrides(args))
    if problems := file_problems(cfg):
        raise ConfigError(problems)
    source = config_path(args.config)
    warnings = run_warnings(cfg)
    for line in warnings:
        print(f"edge-pose: warning: {line}", file=sys.stderr)
    if args.json:
        print(
            json.dumps(
                {
                    "valid": True,
                    "file": str(source) if source else None,
                    "warnings": warnings,
                    "config": to_toml_dict(cfg),
                }
            )
        )
    else:
        print(
            f"config OK: {source or 'built-in defaults'} (device {cfg.device.id}, "
            f"camera {cfg.camera.source}, model {cfg.model.name})"
        )
    return EX_OK
