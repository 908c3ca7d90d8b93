"""An image's width and height from its header, read before the image is decoded.

OpenCV allocates whatever a header claims (a 20000x20000 PNG of a few kB takes 2.4 GB) and
raises its own error above 2^30 pixels. Reading the size first lets a hostile or absurd image be
refused in one line, with bounded memory. Only the formats the file cameras accept are known
(PNG, JPEG, BMP, TIFF, WebP, PBM/PGM/PPM/PAM); OpenCV picks a decoder by content, not by name,
so a file whose first bytes are none of these is refused too.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

Reader = Callable[[BinaryIO, bytes], tuple[int, int]]

# Above this many pixels an image is refused: 50 MP is a large photo (8160x6120) and takes
# 150 MB as RGB (a 16-bit RGBA one up to 400 MB while decoding). docs/service.md, File cameras.
MAX_IMAGE_PIXELS = 50_000_000

# A JPEG's size is in its frame header, after any APPn (EXIF, ICC) segments; this many
# segments without one is not a JPEG worth decoding.
_MAX_JPEG_SEGMENTS = 256
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}  # not DHT, JPG, DAC
_MAX_JPEG_FILL = 64  # 0xFF fill bytes allowed before a marker


class ImageHeaderError(ValueError):
    """The header is not one of the known formats, or is cut short or inconsistent."""


class ImageTooLarge(ImageHeaderError):
    """The header states more pixels than allowed."""


def image_size(path: Path) -> tuple[int, int]:
    """``(width, height)`` as the header of the image at ``path`` states them."""
    with open(path, "rb") as f:
        head = f.read(32)
        reader = _reader_for(head)
        if reader is None:
            raise ImageHeaderError("not a PNG, JPEG, BMP, TIFF, WebP or PNM image")
        width, height = reader(f, head)
    if width <= 0 or height <= 0:
        raise ImageHeaderError(f"its header states a size of {width}x{height}")
    return width, height


def check_image_size(path: Path, limit: int = MAX_IMAGE_PIXELS) -> None:
    """ImageHeaderError when the header is unreadable or states more than ``limit`` pixels."""
    width, height = image_size(path)
    if width * height > limit:
        raise ImageTooLarge(
            f"{width}x{height} is {width * height / 1e6:.0f} megapixels, more than the "
            f"{limit / 1e6:.0f} allowed; scale it down"
        )


def _reader_for(head: bytes) -> Reader | None:
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return _png
    if head.startswith(b"\xff\xd8"):
        return _jpeg
    if head.startswith(b"BM"):
        return _bmp
    if head[:4] in (b"II*\x00", b"MM\x00*"):
        return _tiff
    if head.startswith(b"RIFF") and head[8:12] == b"WEBP":
        return _webp
    if len(head) > 1 and head[0:1] == b"P" and head[1:2] in b"1234567":
        return _pnm
    return None


def _unpack(fmt: str, data: bytes, offset: int = 0) -> tuple[int, ...]:
    try:
        return struct.unpack_from(fmt, data, offset)
    except struct.error:
        raise ImageHeaderError("its header is cut short") from None


def _png(f: BinaryIO, head: bytes) -> tuple[int, int]:
    if head[12:16] != b"IHDR":
        raise ImageHeaderError("a PNG whose first chunk is not IHDR")
    width, height = _unpack(">II", head, 16)
    return width, height


def _jpeg(f: BinaryIO, head: bytes) -> tuple[int, int]:
    f.seek(2)
    for _ in range(_MAX_JPEG_SEGMENTS):
        marker = f.read(2)
        for _ in range(_MAX_JPEG_FILL):  # fill bytes before a marker
            if marker != b"\xff\xff":
                break
            marker = marker[1:] + f.read(1)
        if len(marker) < 2 or marker[0] != 0xFF or marker[1] == 0xFF:
            break
        if 0xD0 <= marker[1] <= 0xD7 or marker[1] == 0x01:  # markers without a length
            continue
        (length,) = _unpack(">H", f.read(2))
        if marker[1] in _JPEG_SOF:
            _precision, height, width = _unpack(">BHH", f.read(5))
            return width, height
        if marker[1] in (0xD9, 0xDA) or length < 2:  # end, or scan data before any frame
            break
        f.seek(length - 2, 1)
    raise ImageHeaderError("a JPEG without a frame header")


def _bmp(f: BinaryIO, head: bytes) -> tuple[int, int]:
    (dib_size,) = _unpack("<I", head, 14)
    if dib_size == 12:  # OS/2 BITMAPCOREHEADER: 16-bit sizes
        width, height = _unpack("<HH", head, 18)
        return width, height
    width, height = _unpack("<ii", head, 18)
    return width, abs(height)  # a negative height is a top-down bitmap


def _tiff(f: BinaryIO, head: bytes) -> tuple[int, int]:
    order = "<" if head[:2] == b"II" else ">"
    (ifd,) = _unpack(order + "I", head, 4)
    f.seek(ifd)
    (count,) = _unpack(order + "H", f.read(2))
    entries = f.read(12 * count)
    size: dict[int, int] = {}
    for n in range(len(entries) // 12):
        tag, kind = _unpack(order + "HH", entries, 12 * n)
        if tag in (256, 257):  # ImageWidth, ImageLength: SHORT or LONG
            value_format = {3: "H", 4: "I"}.get(kind)
            if value_format is None:
                raise ImageHeaderError("a TIFF whose size is not a whole number")
            (size[tag],) = _unpack(order + value_format, entries, 12 * n + 8)
    if len(size) < 2:
        raise ImageHeaderError("a TIFF whose first image states no width or height")
    return size[256], size[257]


def _webp(f: BinaryIO, head: bytes) -> tuple[int, int]:
    chunk = head[12:16]
    if chunk == b"VP8 ":  # lossy: 14-bit sizes after the key frame's start code
        if head[23:26] != b"\x9d\x01\x2a":
            raise ImageHeaderError("a WebP whose frame header is damaged")
        width, height = _unpack("<HH", head, 26)
        return width & 0x3FFF, height & 0x3FFF
    if chunk == b"VP8L":  # lossless: 14-bit width-1 and height-1, packed
        (bits,) = _unpack("<I", head, 21)
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8X":  # extended: 24-bit canvas width-1 and height-1
        data = head[24:30]
        if len(data) < 6:
            raise ImageHeaderError("its header is cut short")
        return int.from_bytes(data[:3], "little") + 1, int.from_bytes(data[3:], "little") + 1
    raise ImageHeaderError("a WebP of an unknown kind")


def _pnm(f: BinaryIO, head: bytes) -> tuple[int, int]:
    f.seek(0)
    text = f.read(4096)
    if head[1:2] == b"7":  # PAM: WIDTH and HEIGHT lines before ENDHDR
        fields = dict(
            line.split(None, 1) for line in text.split(b"\n")[1:] if len(line.split()) == 2
        )
        return _number(fields.get(b"WIDTH", b"")), _number(fields.get(b"HEIGHT", b""))
    tokens = b" ".join(line.split(b"#", 1)[0] for line in text.split(b"\n")).split()
    if len(tokens) < 3:
        raise ImageHeaderError("its header is cut short")
    return _number(tokens[1]), _number(tokens[2])


def _number(token: bytes) -> int:
    token = token.strip()
    if not token.isdigit() or len(token) > 12:
        raise ImageHeaderError("its header states no whole-number size")
    return int(token)
