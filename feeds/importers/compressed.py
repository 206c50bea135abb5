"""A capture's bytes, unpacked from zstd or gzip, or a clear error where the data ends or breaks.

A compressed file cut short (a copy stopped early, a disk filled up) still decodes up to the
cut, and `gzip`/`zstandard`'s one-shot readers either return that prefix as if it were the
whole file (zstd's stream reader) or raise an `EOFError` that names nothing (gzip). Here every
frame (zstd) or member (gzip) must reach its end marker; a cut or a corruption raises
`CutShort` with the byte where it happened and the bytes that did decode, so the importer can
say how much it read before failing.

`unpacked` yields the bytes piece by piece as they are unpacked, so a caller can work on one
piece while the next unpacks (zlib, ISA-L and zstd release the GIL). gzip is inflated by
ISA-L (`isal`, the `fast` extra: a faster inflater, same bytes) when it is installed, else by
zlib; both check every member's CRC and length.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import zstandard

try:
    from isal import isal_zlib as _inflate
except ImportError:  # optional: the `fast` extra
    _inflate = zlib
INFLATER = "ISA-L (isal)" if _inflate is not zlib else "zlib"  # what benches report

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
GZIP_MAGIC = b"\x1f\x8b"
# input fed per call: a corruption is placed within this many bytes, and a capture's piece
# (~1.7 MB unpacked) is small enough to be worked on while the next one unpacks
_CHUNK = 256 << 10
_HEAD_STEP = 64 << 10


class CutShort(ValueError):
    """Compressed data that ends or breaks before its end marker; `partial` is what decoded
    (empty when raised by `unpacked`, whose caller holds the pieces)."""

    def __init__(self, message: str, partial: bytes = b"") -> None:
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
    out: list[bytes] = []
    try:
        out.extend(unpacked(path))
    except CutShort as exc:
        raise CutShort(str(exc), b"".join(out)) from None
    return out[0] if len(out) == 1 else b"".join(out)


def unpacked(path: str | Path) -> Iterator[bytes]:
    """The file's bytes in pieces as they unpack (a plain file: one piece); CutShort, after
    the last good piece, when it is cut or corrupt."""
    data = Path(path).read_bytes()
    kind = compression(data)
    if kind is None:
        yield data
    else:
        yield from _unpack(data, kind)


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
        except _ERRORS as exc:
            raise ValueError(f"{path}: corrupt {kind} data at its start ({exc})") from None
    return out[:n]


_ERRORS = (zlib.error, _inflate.error, zstandard.ZstdError)


def _decoder(kind: str) -> Callable:
    if kind == "zstd":
        return zstandard.ZstdDecompressor().decompressobj
    return lambda: _inflate.decompressobj(wbits=31)  # one gzip member; checks CRC and length


def _unpack(data: bytes, kind: str) -> Iterator[bytes]:
    """Every frame or member of `data`, each to its end marker, in pieces."""
    view = memoryview(data)
    new = _decoder(kind)
    pos = 0
    while pos < len(data):
        dec = new()
        while not dec.eof:
            if pos >= len(data):
                raise CutShort(
                    f"the {kind} data ends inside a {'frame' if kind == 'zstd' else 'member'} "
                    f"at byte {len(data):,} (the file is cut short)"
                )
            chunk = view[pos : pos + _CHUNK]
            try:
                piece = dec.decompress(chunk)
            except _ERRORS as exc:
                raise CutShort(
                    f"corrupt {kind} data within bytes {pos:,}-{pos + len(chunk):,} ({exc})"
                ) from None
            if piece:
                yield piece
            pos += len(chunk)
        pos -= len(dec.unused_data)
        if kind == "gzip":  # like gzip.decompress: zero padding after the last member is fine
            while pos < len(data) and data[pos] == 0:
                pos += 1
