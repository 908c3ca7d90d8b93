"""JSON Schemas (draft 2020-12) of every MQTT payload and of status.json, shipped with the package.

``load_schema("pose")`` returns the parsed schema of ``<base>/pose``; :data:`TOPIC_SCHEMAS` maps
each topic suffix to its schema name. docs/mqtt.md shows the same files, and the tests validate
real payloads of a real run against them. ``load_schema("status")`` is the status document
(:data:`FILE_SCHEMAS`, docs/status.md), checked against the files of real runs. The schemas are
closed (``additionalProperties: false``) so that an undocumented field fails the tests;
consumers should still ignore fields they do not know, as new ones may come within payload
version 1.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from edge_pose import wire

# Topic suffix under <prefix>/<device id> -> schema name. `keypoints` is `keypoints-compact`
# when the payload says "format": "compact".
TOPIC_SCHEMAS = {
    wire.AVAILABILITY: "availability",
    wire.KEYPOINTS: "keypoints",
    wire.POSE: "pose",
    wire.EVENT: "event",
    wire.STATS: "stats",
    wire.STATE: "state",
    wire.SET: "command",
}
NAMES = (*dict.fromkeys(TOPIC_SCHEMAS.values()), "keypoints-compact", "ha-discovery")
FILE_SCHEMAS = ("status",)  # files edge-pose writes, not MQTT payloads


@cache
def _text(name: str) -> str:
    if name not in NAMES + FILE_SCHEMAS:
        raise KeyError(f"no schema {name!r} (known: {', '.join(NAMES + FILE_SCHEMAS)})")
    return (resources.files(__name__) / f"{name}.schema.json").read_text(encoding="utf-8")


def load_schema(name: str) -> dict[str, Any]:
    """The schema ``name`` (see :data:`NAMES`, :data:`FILE_SCHEMAS`), parsed; a fresh copy on
    every call."""
    return json.loads(_text(name))
