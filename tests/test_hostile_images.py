"""Hostile and unusual images: every kind decodes or is refused in one line, memory stays bounded.

Real encoders (OpenCV's PNG, JPEG, BMP, TIFF, WebP, PNM writers) and hand-built files (palette
PNG, 1-bit BMP) are the seeds; seeded mutations of them (size claims, truncation, byte flips,
content under another format's name) are decoded in a child process with an address-space
limit, so a crash or a 2.4 GB allocation fails the test instead of the machine.
"""

from __future__ import annotations

import json
import random
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge_pose.camera.imagesize import MAX_IMAGE_PIXELS, image_size
from edge_pose.camera.open import open_camera
from edge_pose.errors import CameraError

SEED = 20260112
MUTANTS_PER_SEED = 12
# The child's address space: a decoder that believes a 20000x20000 header needs far more.
CHILD_MEMORY = 1536 << 20
PNG_BILEVEL = cv2.IMWRITE_PNG_BILEVEL
RGB = np.random.default_rng(3).integers(0, 256, (30, 40, 3), np.uint8)


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def palette_png(width: int = 40, height: int = 30) -> bytes:
    """An 8-bit palette PNG (colour type 3), which OpenCV cannot write itself."""
    rows = b"".join(b"\x00" + bytes(x % 4 for x in range(width)) for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 3, 0, 0, 0))
        + png_chunk(b"PLTE", bytes([255, 0, 0, 0, 255, 0, 0, 0, 255, 9, 9, 9]))
        + png_chunk(b"IDAT", zlib.compress(rows))
        + png_chunk(b"IEND", b"")
    )


def one_bit_bmp(width: int = 40, height: int = 30) -> bytes:
    stride = ((width + 31) // 32) * 4
    pixels = bytes([0b10101010] * stride * height)
    info = struct.pack("<IiiHHIIiiII", 40, width, height, 1, 1, 0, len(pixels), 0, 0, 2, 0)
    palette = b"\x00\x00\x00\x00\xff\xff\xff\x00"
    offset = 14 + len(info) + len(palette)
    header = b"BM" + struct.pack("<IHHI", offset + len(pixels), 0, 0, offset)
    return header + info + palette + pixels


def encoded(suffix: str, image: np.ndarray, params: list[int] | None = None) -> bytes:
    ok, data = cv2.imencode(suffix, image, params or [])
    assert ok, suffix
    return data.tobytes()


def seed_images() -> dict[str, bytes]:
    """One file per format, bit depth and colour space the cameras accept."""
    grey = cv2.cvtColor(RGB, cv2.COLOR_RGB2GRAY)
    rgba = np.dstack([RGB, np.full(RGB.shape[:2], 128, np.uint8)])
    deep = RGB.astype(np.uint16) * 257
    return {
        "rgb.png": encoded(".png", RGB),
        "grey.png": encoded(".png", grey),
        "alpha.png": encoded(".png", rgba),
        "16bit.png": encoded(".png", deep),
        "16bit-grey.png": encoded(".png", deep[:, :, 0]),
        "1bit.png": encoded(".png", (grey > 127).astype(np.uint8) * 255, [PNG_BILEVEL, 1]),
        "palette.png": palette_png(),
        "rgb.jpg": encoded(".jpg", RGB),
        "grey.jpg": encoded(".jpg", grey),
        "progressive.jpg": encoded(".jpg", RGB, [cv2.IMWRITE_JPEG_PROGRESSIVE, 1]),
        "rgb.bmp": encoded(".bmp", RGB),
        "grey.bmp": encoded(".bmp", grey),
        "1bit.bmp": one_bit_bmp(),
        "rgb.tif": encoded(".tif", RGB),
        "16bit.tif": encoded(".tif", deep),
        "alpha.tif": encoded(".tif", rgba),
        "lossy.webp": encoded(".webp", RGB, [cv2.IMWRITE_WEBP_QUALITY, 80]),
        "lossless.webp": encoded(".webp", RGB, [cv2.IMWRITE_WEBP_QUALITY, 101]),
        "grey.pgm": encoded(".pgm", grey),
        "16bit.pgm": encoded(".pgm", deep[:, :, 0]),
        "rgb.ppm": encoded(".ppm", RGB),
    }


def claim_size(name: str, data: bytes, width: int, height: int) -> bytes:
    """``data`` with its header stating ``width`` x ``height`` (the pixels unchanged)."""
    b = bytearray(data)
    if name.endswith(".png"):
        b[16:24] = struct.pack(">II", width, height)
        b[29:33] = struct.pack(">I", zlib.crc32(bytes(b[12:29])))
    elif name.endswith(".bmp"):
        b[18:26] = struct.pack("<II", width & 0xFFFFFFFF, height & 0xFFFFFFFF)  # may be < 0
    elif name.endswith(".jpg"):
        sof = next(i for i in range(2, len(b) - 9) if b[i] == 0xFF and b[i + 1] in (0xC0, 0xC2))
        b[sof + 5 : sof + 9] = struct.pack(">HH", min(height, 65535), min(width, 65535))
    elif name.endswith(".pgm") or name.endswith(".ppm"):
        magic, _size, rest = bytes(b).split(b"\n", 2)
        return magic + f"\n{width} {height}\n".encode() + rest
    elif name.endswith(".tif"):
        b = bytearray(retag_tiff(bytes(b), width, height))
    elif name == "lossless.webp":
        bits = (width - 1) & 0x3FFF | ((height - 1) & 0x3FFF) << 14
        b[21:25] = struct.pack("<I", bits | (struct.unpack_from("<I", b, 21)[0] & 0xF0000000))
    elif name == "lossy.webp":
        b[26:30] = struct.pack("<HH", width & 0x3FFF, height & 0x3FFF)
    return bytes(b)


def retag_tiff(data: bytes, width: int, height: int) -> bytes:
    b = bytearray(data)
    (ifd,) = struct.unpack_from("<I", b, 4)
    (count,) = struct.unpack_from("<H", b, ifd)
    for n in range(count):
        at = ifd + 2 + 12 * n
        tag = struct.unpack_from("<H", b, at)[0]
        if tag in (256, 257):
            struct.pack_into("<HHII", b, at, tag, 4, 1, width if tag == 256 else height)
    return bytes(b)


def mutate(rng: random.Random, name: str, data: bytes) -> tuple[str, bytes]:
    """One seeded mutation of ``data``: its kind names the class of input it stands for."""
    kind = rng.choice(["claim", "claim", "truncate", "flip-header", "flip-any", "renamed", "zero"])
    if kind == "claim":
        side = rng.choice([0, 1, 16383, 20000, 65535, 2**31 - 1, rng.randrange(1, 2**32)])
        other = rng.choice([side, 1, rng.randrange(1, 70000)])
        if name.endswith(".bmp") and rng.random() < 0.3:
            other = -other  # a top-down bitmap
        return kind, claim_size(name, data, side, other)
    if kind == "truncate":
        return kind, data[: rng.randrange(0, len(data))]
    if kind == "zero":
        return kind, b""
    b = bytearray(data)
    span = min(len(b), 64) if kind == "flip-header" else len(b)
    for _ in range(rng.randrange(1, 9)):
        b[rng.randrange(span)] = rng.randrange(256)
    if kind == "renamed":  # this content under another format's name
        return kind, bytes(b[: rng.randrange(len(b) // 2, len(b) + 1)])
    return kind, bytes(b)


def decode_all(folder: Path) -> dict[str, object]:
    """Child side: load every file; report what each gave and the peak memory."""
    from edge_pose.camera.file import load_image

    results: dict[str, str] = {}
    for path in sorted(folder.iterdir()):
        try:
            image = load_image(path)
        except CameraError as exc:
            message = str(exc)
            results[path.name] = "refused" if "\n" not in message else f"MULTI-LINE {message!r}"
            continue
        except BaseException as exc:  # the defect under test: anything not a CameraError
            results[path.name] = f"ESCAPED {type(exc).__name__}: {str(exc)[:200]!r}"
            continue
        ok = image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
        results[path.name] = "decoded" if ok else f"WRONG SHAPE {image.shape} {image.dtype}"
    # VmHWM, not ru_maxrss: a child of a big test worker would count the worker's pages it
    # shared before exec, and the figure would depend on which tests ran in that worker.
    from edge_pose.sysinfo import process_memory_mb

    peak = int((process_memory_mb()["peak_rss_mb"] or 0.0) * (1 << 20))
    return {"results": results, "peak": peak}


def run_child(folder: Path) -> dict[str, object]:
    code = (
        "import json, resource, sys; from pathlib import Path; "
        f"resource.setrlimit(resource.RLIMIT_AS, ({CHILD_MEMORY}, {CHILD_MEMORY})); "
        f"sys.path.insert(0, {str(Path(__file__).parent)!r}); "
        "from test_hostile_images import decode_all; "
        "print(json.dumps(decode_all(Path(sys.argv[1]))))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, str(folder)], capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, f"decoder child died ({proc.returncode}): {proc.stderr[-2000:]}"
    return json.loads(proc.stdout.splitlines()[-1])


def test_every_kind_of_image_decodes_to_rgb_with_its_header_size(tmp_path: Path) -> None:
    from edge_pose.camera.file import load_image

    for name, data in seed_images().items():
        path = tmp_path / name
        path.write_bytes(data)
        assert image_size(path) == (40, 30), name
        image = load_image(path)
        assert image.shape == (30, 40, 3) and image.dtype == np.uint8, name


@pytest.mark.parametrize("claim", [(20000, 20000), (65535, 65535), (2**31 - 1, 1), (7072, 7072)])
def test_a_size_claim_over_the_limit_is_refused_in_one_line(
    tmp_path: Path, claim: tuple[int, int]
) -> None:
    for name, data in seed_images().items():
        if "webp" in name and max(claim) > 16384:
            continue  # WebP cannot state more than 16384 a side
        (tmp_path / name).write_bytes(claim_size(name, data, *claim))
    report = run_child(tmp_path)
    results = report["results"]
    assert set(results.values()) == {"refused"}, results
    assert report["peak"] < 600 << 20
    assert claim[0] * claim[1] > MAX_IMAGE_PIXELS


def test_fuzzed_images_decode_or_are_refused_with_bounded_memory(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    kinds: dict[str, str] = {}
    seeds = seed_images()
    for name, data in seeds.items():
        for n in range(MUTANTS_PER_SEED):
            kind, mutant = mutate(rng, name, data)
            target = rng.choice(list(seeds)) if kind == "renamed" else name
            file = f"{n:02d}-{kind}-{name}{Path(target).suffix}"
            (tmp_path / file).write_bytes(mutant)
            kinds[file] = kind
    report = run_child(tmp_path)
    results = report["results"]
    bad = {name: outcome for name, outcome in results.items()
           if outcome not in ("decoded", "refused")}
    assert bad == {}
    assert len(results) == len(seeds) * MUTANTS_PER_SEED
    assert {"decoded", "refused"} <= set(results.values())
    assert report["peak"] < 600 << 20, f"peak {report['peak'] >> 20} MB"


def test_a_folder_camera_skips_a_huge_image_and_goes_on(tmp_path: Path, caplog) -> None:
    seeds = seed_images()
    (tmp_path / "a.png").write_bytes(seeds["rgb.png"])
    (tmp_path / "b.png").write_bytes(claim_size("rgb.png", seeds["rgb.png"], 20000, 20000))
    (tmp_path / "c.jpg").write_bytes(seeds["rgb.jpg"])
    camera = open_camera(str(tmp_path), realtime=False)
    frames = []
    while (frame := camera.read()) is not None:
        frames.append(frame)
    assert len(frames) == 2 and camera.skipped == 1
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1 and "20000x20000 is 400 megapixels" in warnings[0]


def test_an_estimate_batch_goes_on_past_a_huge_image(tmp_path: Path, data_dir: Path) -> None:
    seeds = seed_images()
    huge = tmp_path / "huge.png"
    huge.write_bytes(claim_size("rgb.png", seeds["rgb.png"], 20000, 20000))
    squat = data_dir / "coral" / "squat.bmp"
    proc = subprocess.run(
        [sys.executable, "-m", "edge_pose.cli", "estimate", str(huge), str(squat), "--json"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 1, proc.stderr
    assert proc.stderr.strip().splitlines() == [
        f"edge-pose: error: image {huge} refused: 20000x20000 is 400 megapixels, more than "
        f"the {MAX_IMAGE_PIXELS / 1e6:.0f} allowed; scale it down"
    ]
    results = json.loads(proc.stdout)
    assert [r["image"] for r in results] == [str(squat)] and results[0]["person"]


def test_the_header_reader_is_not_fooled_by_its_own_fields(tmp_path: Path) -> None:
    """Headers built to send the reader far (huge TIFF offsets and counts, endless JPEG fill,
    PNM numbers of thousands of digits) are refused quickly, not read or looped through."""
    cases = {
        "far.tif": b"II*\x00" + struct.pack("<I", 2**32 - 1),
        "many.tif": b"II*\x00\x08\x00\x00\x00\xff\xff" + b"\x00" * 40,
        "fill.jpg": b"\xff\xd8" + b"\xff" * 100_000,
        "digits.pgm": b"P5\n" + b"9" * 5000 + b" 1\n255\n",
        "pam.pgm": b"P7\nWIDTH 99999999\nHEIGHT 99999999\nENDHDR\n",
        "short.png": b"\x89PNG\r\n\x1a\n\x00\x00",
        "garbage.png": bytes(random.Random(SEED).randrange(256) for _ in range(512)),
    }
    from edge_pose.camera.file import load_image

    for name, data in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        with pytest.raises(CameraError) as caught:
            load_image(path)
        assert "\n" not in str(caught.value) and str(path) in str(caught.value), name
