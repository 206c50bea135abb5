"""A capture's bytes, unpacked from zstd or gzip, or a clear error where the data ends or breaks.

A compressed file cut short (a copy stopped early, a disk filled up) still decodes up to the
cut, and `gzip`/`zstandard`'s one-shot readers either return that prefix as if it were the
whole file (zstd's stream reader) or raise an `EOFError` that names nothing (gzip). Here every
frame (zstd) or member (gzip) must reach its end marker; a cut or a corruption raises
`CutShort` with the byte where it happened and the bytes that did decode, so the importer can
say how much it read before failing.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from pathlib import Path

import zstandard

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
GZIP_MAGIC = b"\x1f\x8b"
_CHUNK = 4 << 20  # input fed per call: a corruption is placed within this many bytes
_HEAD_STEP = 64 << 10


class CutShort(ValueError):
    """Compressed data that ends or breaks before its end marker; `partial` is what decoded."""

    def __init__(self, message: str, partial: bytes) -> None:
        super().__init__(message)
        self.partial = partial


def compression(head: bytes) -> str | None:
    """'zstd', 'gzip' or None (plain), from a file's first bytes."""
    if head[:4] == ZSTD_MAGIC:
        return "zstd"
    if head[:2] == GZIP_MAGIC:
        return "gzip"
    return None


def decompressed(path: str | Path) -> bytes:
    """The whole file, unpacked when it is zstd or gzip; CutShort when it is cut or corrupt."""
    data = Path(path).read_bytes()
    kind = compression(data)
    if kind is None:
        return data
    return _unpack(data, kind)


def head(path: str | Path, n: int = 4096) -> bytes:
    """Up to `n` unpacked bytes from the start of the file (a cut or corrupt tail is not
    looked at: format detection needs the first line only)."""
    with open(path, "rb") as f:
        raw = f.read(n)
        kind = compression(raw)
        if kind is None:
            return raw
        dec = _decoder(kind)()
        out = b""
        try:
            # a zstd block yields nothing until all of it is in: up to 128 KiB of input
            while len(out) < n and raw and not dec.eof:
                out += dec.decompress(raw)
                raw = f.read(_HEAD_STEP)
        except (zlib.error, zstandard.ZstdError) as exc:
            raise ValueError(f"{path}: corrupt {kind} data at its start ({exc})") from None
    return out[:n]


def _decoder(kind: str) -> Callable:
    if kind == "zstd":
        return zstandard.ZstdDecompressor().decompressobj
    return lambda: zlib.decompressobj(wbits=31)  # one gzip member; checks its CRC and length


def _unpack(data: bytes, kind: str) -> bytes:
    """Every frame or member of `data`, each to its end marker."""
    view = memoryview(data)
    new = _decoder(kind)
    out: list[bytes] = []
    pos = 0
    while pos < len(data):
        dec = new()
        while not dec.eof:
            if pos >= len(data):
                raise CutShort(
                    f"the {kind} data ends inside a {'frame' if kind == 'zstd' else 'member'} "
                    f"at byte {len(data):,} (the file is cut short)",
                    b"".join(out),
                )
            chunk = view[pos : pos + _CHUNK]
            try:
                out.append(dec.decompress(chunk))
            except (zlib.error, zstandard.ZstdError) as exc:
                raise CutShort(
                    f"corrupt {kind} data within bytes {pos:,}-{pos + len(chunk):,} ({exc})",
                    b"".join(out),
                ) from None
            pos += len(chunk)
        pos -= len(dec.unused_data)
        if kind == "gzip":  # like gzip.decompress: zero padding after the last member is fine
            while pos < len(data) and data[pos] == 0:
                pos += 1
    return out[0] if len(out) == 1 else b"".join(out)
