"""`edge-pose config show | set | zone`: print the effective configuration, change keys in the
file, add, remove and list zones.

The editing (validated first, atomic, comments kept) and the reload are
edge_pose.config_edit's (keys) and edge_pose.config_zones' (zones); this module turns their
outcomes into messages and exit codes: an invalid value is exit 78 with ``nothing written``, a
malformed ``KEY=VALUE`` or ``--polygon`` exit 2, a file that cannot be written exit 1. A value
`run` would refuse on this machine only (a camera file not here, a model not installed) is
written with a warning: the device may differ from the machine editing its config.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Callable, Sequence
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
    actions = parser.add_subparsers(dest="config_command", metavar="{show,set,zone}", required=True)
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
        description="Set section.key=value (or section.table.key=value, e.g. "
        "events.fall.confirm_s=5) in the config file. The result is validated before "
        "it is written (invalid: exit 78, file unchanged); the file is replaced atomically and "
        "its comments are kept. A missing file is created from the documented defaults. "
        "Zones are changed with `config zone`.",
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
    _add_zone_parser(actions)
    return parser


def _add_zone_parser(actions: Subparsers) -> None:
    zone = actions.add_parser(
        "zone",
        help="add, remove or list the zones ([[zones]] in the config file)",
        description="Add, remove or list the zones: named parts of the picture (a bed, a door) "
        "for the zone, fall and inactivity events (docs/events.md).",
    )
    verbs = zone.add_subparsers(dest="zone_command", metavar="{add,remove,list}", required=True)
    config_help = "config file (default /etc/edge-pose/config.toml)"
    add = verbs.add_parser(
        "add",
        help="add a zone (validated first, comments kept)",
        description="Append a [[zones]] entry to the config file. The result is validated "
        "before it is written (a bad polygon or a name already used: exit 78, file unchanged); "
        "the file is replaced atomically. A missing file is created from the documented "
        "defaults.",
    )
    add.add_argument("--config", type=Path, help=config_help)
    add.add_argument("--reload", action="store_true", help="then tell the running daemon (SIGHUP)")
    add.add_argument(
        "name", metavar="NAME", help="1-32 letters, digits, spaces, '_' or '-' (e.g. bed)"
    )
    add.add_argument(
        "--polygon",
        required=True,
        type=_argument(_polygon),
        metavar='"x,y x,y x,y ..."',
        help="3 to 64 corners in order around the zone, x and y fractions 0 to 1 of the "
        "picture's width and height from its top left, e.g. \"0.1,0.6 0.45,0.6 0.45,0.95\"",
    )
    add.add_argument(
        "--lying-ok",
        action="store_true",
        help="lying here (a bed, a sofa) is never a fall",
    )
    add.add_argument(
        "--inactive-after",
        type=_argument(_seconds),
        metavar="SECONDS",
        help="report inactivity here after this long (0: never; default: "
        "events.inactivity.after_s)",
    )
    remove = verbs.add_parser(
        "remove",
        help="remove a zone",
        description="Delete the zone's [[zones]] entry from the config file (validated first, "
        "written atomically; a zone that is not there: exit 78, file unchanged).",
    )
    remove.add_argument("--config", type=Path, help=config_help)
    remove.add_argument(
        "--reload", action="store_true", help="then tell the running daemon (SIGHUP)"
    )
    remove.add_argument("name", metavar="NAME", help="the zone's name (as `config zone list`)")
    listing = verbs.add_parser(
        "list",
        help="print the zones",
        description="Print each zone of the config: name, corners (as --polygon takes them) "
        "and flags.",
    )
    listing.add_argument("--config", type=Path, help=config_help)


def _argument(parse: Callable[[str], object]) -> Callable[[str], object]:
    """An argparse ``type`` from a parser that raises ValueError with a message: argparse
    would otherwise print its own "invalid value" instead of the message."""

    def convert(text: str) -> object:
        try:
            return parse(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return convert


def _polygon(text: str) -> object:
    from edge_pose.config_zones import parse_polygon

    return parse_polygon(text)


def _seconds(text: str) -> object:
    from edge_pose.config_zones import parse_seconds

    return parse_seconds(text)


def run(args: argparse.Namespace) -> int:
    if args.config_command == "zone":
        return _zone(args)
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


def _zone(args: argparse.Namespace) -> int:
    """`config zone add|remove|list`: one line per problem, the last one saying that nothing
    was written, so a bad input is one line on stderr."""
    from edge_pose.config import DEFAULT_CONFIG_PATH, config_path, load_config
    from edge_pose.config_edit import reload_daemon
    from edge_pose.config_zones import add_zone, remove_zone, zone_lines

    if args.zone_command == "list":
        try:
            cfg = load_config(args.config)
        except ConfigError as exc:
            for line in exc.problems:
                print(f"edge-pose: error: {line}", file=sys.stderr)
            return exc.exit_code
        lines = zone_lines(cfg)
        origin = config_path(args.config) or "the built-in defaults"
        if not lines:
            print(
                f"no zones in {origin}: add one with `edge-pose config zone add NAME "
                '--polygon "x,y x,y x,y ..."`'
            )
        for line in lines:
            print(line)
        return EX_OK
    path = config_path(args.config) or DEFAULT_CONFIG_PATH
    try:
        if args.zone_command == "add":
            path, created, cfg = add_zone(
                path, args.name, args.polygon, args.lying_ok, args.inactive_after
            )
            done = f"{'created' if created else 'updated'} {path}: added zone {args.name!r}"
        else:
            path, cfg, name = remove_zone(path, args.name)
            done = f"updated {path}: removed zone {name!r}"
    except ConfigError as exc:
        *first, last = exc.problems
        for line in first:
            print(f"edge-pose: error: {line}", file=sys.stderr)
        print(f"edge-pose: error: {last}; nothing written to {path}", file=sys.stderr)
        return exc.exit_code
    except EdgePoseError as exc:
        print(f"edge-pose: error: {exc}; nothing written", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:
        print(f"edge-pose: error: cannot write {path}: {exc.strerror or exc}", file=sys.stderr)
        return EX_FAILURE
    print(done)
    if not args.reload:
        return EX_OK
    code, message = reload_daemon(cfg)
    print(message, file=sys.stdout if code == EX_OK else sys.stderr)
    return code
