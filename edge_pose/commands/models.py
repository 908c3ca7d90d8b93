"""`edge-pose models list | fetch | verify`: the catalog, downloads, checksums.

The folder is the one `run` loads from: ``--dir``, else the config's ``model.dir``, else the
default. A broken system config does not stop `models` (the package's postinst fetches with
``--dir`` before the config is fixed): the defaults stand in; a broken ``--config`` is reported.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from edge_pose.errors import EX_FAILURE, EX_OK, ConfigError

if TYPE_CHECKING:
    from edge_pose.commands import Subparsers
    from edge_pose.config import ModelConfig


def add_parser(subparsers: Subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("models", help="list, fetch and verify models")
    actions = parser.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="the model catalog and what is installed")
    fetch = actions.add_parser("fetch", help="download models (default: the configured one)")
    fetch.add_argument("names", nargs="*", metavar="NAME")
    fetch.add_argument("--all", action="store_true", help="every model in the catalog")
    verify = actions.add_parser("verify", help="check installed models against checksums")
    verify.add_argument("names", nargs="*", metavar="NAME")
    for action in (listing, fetch, verify):
        action.add_argument(
            "--dir", type=Path, help="model directory (default: the config's model.dir, see README)"
        )
        action.add_argument(
            "--config", type=Path, help="config file (default /etc/edge-pose/config.toml)"
        )
        action.add_argument("--json", action="store_true")
    return parser


def run(args: argparse.Namespace) -> int:
    from edge_pose.inference.models import default_model_dir

    model_cfg = _model_config(args.config)
    model_dir = args.dir or default_model_dir(model_cfg.dir)
    if args.models_command == "list":
        return _list(model_dir, args.json)
    if args.models_command == "fetch":
        return _fetch(args, model_cfg, model_dir)
    return _verify(args, model_dir)


def _list(model_dir: Path, as_json: bool) -> int:
    from edge_pose.inference.models import catalog

    rows = [
        {
            "name": i.name,
            "input": i.input_size,
            "backend": i.backend,
            "installed": (model_dir / i.file).is_file(),
            "file": str(model_dir / i.file),
            "description": i.description,
        }
        for i in catalog().values()
    ]
    if as_json:
        print(json.dumps(rows))
    else:
        print(f"models in {model_dir}:")
        for r in rows:
            mark = "installed" if r["installed"] else "-"
            print(f"  {r['name']:<32} {r['input']}x{r['input']:<5} {r['backend']:<8} {mark}")
    return EX_OK


def _fetch(args: argparse.Namespace, model_cfg: ModelConfig, model_dir: Path) -> int:
    from edge_pose.inference.models import catalog, fetch

    names = list(catalog()) if args.all else (args.names or [_fetch_name(model_cfg)])
    paths = [str(fetch(name, model_dir)) for name in names]
    if args.json:
        print(json.dumps({"installed": paths}))
    return EX_OK


def _verify(args: argparse.Namespace, model_dir: Path) -> int:
    from edge_pose.inference.models import verify

    results = verify(model_dir, args.names or None)
    if args.json:
        print(
            json.dumps(
                [
                    {"name": r.name, "path": str(r.path), "status": r.status, "detail": r.detail}
                    for r in results
                ]
            )
        )
    else:
        for r in results:
            print(f"{r.status:<9} {r.name:<32} {r.detail}")
    # Missing models only fail when asked for by name; a bad checksum always fails.
    bad = {"mismatch"} | ({"missing"} if args.names else set())
    return EX_FAILURE if any(r.status in bad for r in results) else EX_OK


def _model_config(path: Path | None) -> ModelConfig:
    """``[model]`` of ``--config``, else of the system config, else the defaults (see above)."""
    from edge_pose.config import ModelConfig, load_config

    try:
        return load_config(path).model
    except ConfigError:
        if path is not None:
            raise
        return ModelConfig()


def _fetch_name(model_cfg: ModelConfig) -> str:
    """The configured model when it is a catalog name, else the default model."""
    from edge_pose.config import ModelConfig

    name = model_cfg.name
    return name if not name.endswith(".tflite") else ModelConfig().name
