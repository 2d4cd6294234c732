"""What a file really is, from its first bytes: a caller's MIME type or file extension proves nothing."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Kind = Literal["image", "video", "audio"]
HEAD_BYTES = 12  # `sniff` reads no further: a file's kind is judged before the rest of it is decoded or fetched


@dataclass(frozen=True)
class FileType:
    kind: Kind
    mime: str
    extension: str


PNG = FileType("image", "image/png", "png")
JPEG = FileType("image", "image/jpeg", "jpg")
GIF = FileType("image", "image/gif", "gif")
WEBP = FileType("image", "image/webp", "webp")
BMP = FileType("image", "image/bmp", "bmp")
TIFF = FileType("image", "image/tiff", "tiff")
MP4 = FileType("video", "video/mp4", "mp4")
MOV = FileType("video", "video/quicktime", "mov")
WEBM = FileType("video", "video/webm", "webm")
AVI = FileType("video", "video/x-msvideo", "avi")
WAV = FileType("audio", "audio/wav", "wav")
MP3 = FileType("audio", "audio/mpeg", "mp3")
FLAC = FileType("audio", "audio/flac", "flac")
OGG = FileType("audio", "audio/ogg", "ogg")
M4A = FileType("audio", "audio/mp4", "m4a")

_PREFIXES: tuple[tuple[bytes, FileType], ...] = (
    (b"\x89PNG\r\n\x1a\n", PNG),
    (b"\xff\xd8\xff", JPEG),
    (b"GIF87a", GIF),
    (b"GIF89a", GIF),
    (b"BM", BMP),
    (b"II*\x00", TIFF),
    (b"MM\x00*", TIFF),
    (b"\x1aE\xdf\xa3", WEBM),
    (b"fLaC", FLAC),
    (b"OggS", OGG),
    (b"ID3", MP3),
)
_RIFF = {b"WEBP": WEBP, b"AVI ": AVI, b"WAVE": WAV}
_FTYP_BRANDS = {b"qt  ": MOV, b"M4A ": M4A, b"M4B ": M4A}
_STILL_IMAGE_BRANDS = {b"avif", b"avis", b"heic", b"heix", b"mif1", b"msf1"}


def sniff(data: bytes) -> FileType | None:
    for prefix, file_type in _PREFIXES:
        if data.startswith(prefix):
            return file_type
    if data[:4] == b"RIFF" and data[8:12] in _RIFF:
        return _RIFF[data[8:12]]
    if data[4:8] == b"ftyp" and data[8:12] not in _STILL_IMAGE_BRANDS:
        return _FTYP_BRANDS.get(data[8:12], MP4)
    if len(data) > 1 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0:
        return MP3
    return None
