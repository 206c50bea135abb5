import gzip
import zlib

import numpy as np
import pytest
import zstandard

from redline.feeds.importers import compressed

TEXT = b"".join(b"%d some line of a capture\n" % i for i in range(200_000))
INFLATERS = [zlib]
try:
    from isal import isal_zlib

    INFLATERS.append(isal_zlib)
except ImportError:  # the optional fast inflater: the zlib tests still run
    pass


@pytest.fixture(autouse=True, params=INFLATERS, ids=lambda m: m.__name__)
def inflater(request, monkeypatch):
    """Every test here runs with each gzip inflater there is: ISA-L when installed, and the
    zlib it falls back to."""
    monkeypatch.setattr(compressed, "_inflate", request.param)
    monkeypatch.setattr(compressed, "_ERRORS", (zlib.error, request.param.error,
                                                zstandard.ZstdError))  # fmt: skip
    return request.param


def test_plain_gzip_and_zstd_unpack_whole_with_every_member_and_frame(tmp_path):
    f = tmp_path / "x"
    f.write_bytes(TEXT)
    assert compressed.decompressed(f) == TEXT
    f.write_bytes(gzip.compress(TEXT[:1000]) + gzip.compress(TEXT[1000:]) + b"\0" * 512)
    assert compressed.decompressed(f) == TEXT  # members joined, zero padding allowed
    z = zstandard.ZstdCompressor()
    f.write_bytes(z.compress(TEXT[:1000]) + z.compress(TEXT[1000:]))
    assert compressed.decompressed(f) == TEXT


@pytest.mark.parametrize("kind", ["gzip", "zstd"])
def test_a_cut_is_named_with_its_byte_and_what_decoded_before_it(tmp_path, kind):
    packed = gzip.compress(TEXT) if kind == "gzip" else zstandard.ZstdCompressor().compress(TEXT)
    f = tmp_path / "x"
    cut = len(packed) // 2
    f.write_bytes(packed[:cut])
    with pytest.raises(compressed.CutShort) as err:
        compressed.decompressed(f)
    unit = "member" if kind == "gzip" else "frame"
    assert str(err.value) == (
        f"the {kind} data ends inside a {unit} at byte {cut:,} (the file is cut short)"
    )
    assert 0 < len(err.value.partial) < len(TEXT) and TEXT.startswith(err.value.partial)


def test_corrupt_gzip_is_named_with_the_bytes_it_lies_in(tmp_path, monkeypatch):
    monkeypatch.setattr(compressed, "_CHUNK", 1000)
    packed = bytearray(gzip.compress(TEXT))
    packed[-6] ^= 0xFF  # the CRC no longer matches
    f = tmp_path / "x.gz"
    f.write_bytes(bytes(packed))
    end = len(packed)
    start = end - (end % 1000 or 1000)
    with pytest.raises(compressed.CutShort, match=rf"corrupt gzip data within bytes {start:,}-"):
        compressed.decompressed(f)
    with pytest.raises(zlib.error):  # what the plain reader says: no file, no byte
        zlib.decompress(bytes(packed), wbits=31)


def test_head_reads_the_start_of_a_file_cut_short(tmp_path):
    f = tmp_path / "x.gz"
    f.write_bytes(gzip.compress(TEXT[:200])[:-8])  # a small capture without its trailer
    with pytest.raises(EOFError), gzip.open(f) as g:
        g.read(256)  # the standard reader fails on the trailer detection never needed
    assert compressed.head(f, 256) == TEXT[:200]


def test_head_reads_past_a_first_zstd_block_larger_than_one_read(tmp_path):
    f = tmp_path / "x.zst"
    digits = np.random.default_rng(0).integers(48, 58, 300_000, dtype=np.uint8)
    noisy = digits.tobytes()  # compresses about 2x: a whole block is far more than 4 KiB
    packed = zstandard.ZstdCompressor().compress(noisy)
    f.write_bytes(packed)
    assert zstandard.ZstdDecompressor().decompressobj().decompress(packed[:4096]) == b""
    assert compressed.head(f, 64) == noisy[:64]


@pytest.mark.parametrize("kind", ["gzip", "zstd", "plain"])
def test_unpacked_yields_pieces_that_join_to_the_whole_file(tmp_path, monkeypatch, kind):
    monkeypatch.setattr(compressed, "_CHUNK", 4096)
    f = tmp_path / "x"
    if kind == "gzip":
        f.write_bytes(gzip.compress(TEXT[:5000]) + gzip.compress(TEXT[5000:]) + b"\0" * 9)
    elif kind == "zstd":
        f.write_bytes(zstandard.ZstdCompressor().compress(TEXT))
    else:
        f.write_bytes(TEXT)
    pieces = list(compressed.unpacked(f))
    assert b"".join(pieces) == TEXT
    # a plain file is one piece; a packed one comes out as it unpacks, never as one block
    assert len(pieces) == 1 if kind == "plain" else len(pieces) > 10


def test_unpacked_raises_after_its_last_good_piece(tmp_path, monkeypatch):
    monkeypatch.setattr(compressed, "_CHUNK", 4096)
    packed = gzip.compress(TEXT)
    f = tmp_path / "x.gz"
    f.write_bytes(packed[: len(packed) // 2])
    got = []
    with pytest.raises(compressed.CutShort, match=r"ends inside a member at byte"):
        for piece in compressed.unpacked(f):
            got.append(piece)
    assert 0 < len(b"".join(got)) < len(TEXT) and TEXT.startswith(b"".join(got))
