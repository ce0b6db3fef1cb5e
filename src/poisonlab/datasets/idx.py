"""The IDX array format of MNIST and Fashion-MNIST (optionally gzip-compressed)."""

import struct
import zlib

import numpy as np

from poisonlab.datasets.checksums import check, digest
from poisonlab.errors import PoisonlabError, decoding

# IDX type code -> big-endian numpy dtype.
_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_GZIP_MAGIC = b"\x1f\x8b"
MAX_IDX_BYTES = 64 << 20  # any IDX content larger than this is refused (official MNIST train images: 47 MB)
_CHUNK = 1 << 20


def parse_idx(data: bytes, source: str) -> np.ndarray:
    """Decode an uncompressed IDX file into a native-endian array of its declared shape."""
    shape, header = _header(data, source)
    dtype = np.dtype(_TYPES[data[2]])
    needed = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) != needed:
        raise PoisonlabError(f"{source} has {len(data)} bytes but its IDX header {shape} needs {needed} "
                             "(truncated or corrupted); replace it with a good copy")
    return np.frombuffer(data, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def _header(data: bytes, source: str) -> tuple[tuple[int, ...], int]:
    """The declared shape and the header length of IDX `data`, or a one-line error."""
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] not in _TYPES:
        raise PoisonlabError(f"{source} is not an IDX file (bad magic number {data[:4].hex()}); "
                             "replace it with an official IDX file")
    header = 4 + 4 * data[3]
    if len(data) < header:
        raise PoisonlabError(f"{source} is truncated inside its IDX header; replace it with a good copy")
    return struct.unpack(f">{data[3]}I", data[4:header]), header


def encode_idx(array: np.ndarray) -> bytes:
    """Encode a uint8 array as an uncompressed IDX file."""
    if array.dtype != np.uint8:
        raise ValueError(f"encode_idx writes uint8 arrays only, got {array.dtype}")
    return struct.pack(f">2xBB{array.ndim}I", 0x08, array.ndim, *array.shape) + array.tobytes()


def decode_idx_file(raw: bytes, source: str, expected_md5: str | None, fix: str, shape: tuple[int, ...] | None = None,
                    expected_sha256: str | None = None) -> tuple[np.ndarray, str]:
    """Gunzip `raw` if needed, check the MD5 (and SHA-256) of the IDX content before parsing it, and return
    (array, "md5:<hex>").

    The header is checked first (against `shape` when given, else against MAX_IDX_BYTES), and decompression
    stops at the size it declares, so a small file that inflates to gigabytes is refused early."""
    compressed = raw[:2] == _GZIP_MAGIC
    data = _gunzip(raw, source, fix, shape) if compressed else raw
    if not compressed:
        _declared_size(data, source, fix, shape)
    checked = digest(data, "md5")
    if expected_md5:
        check(checked, expected_md5, source, fix, compressed)
    if expected_sha256:
        check(digest(data, "sha256"), expected_sha256, source, fix, compressed)
    return parse_idx(data, source), checked


def _declared_size(head: bytes, source: str, fix: str, shape: tuple[int, ...] | None) -> int:
    """The byte size the IDX header at the start of `head` declares, refusing shapes other than `shape` and sizes
    over MAX_IDX_BYTES."""
    declared, header = _header(head, source)
    size = header + int(np.prod(declared, dtype=np.int64)) * np.dtype(_TYPES[head[2]]).itemsize
    if shape is not None and declared != shape:
        raise PoisonlabError(f"{source} declares an IDX array of shape {declared}, not the official {shape}; {fix}")
    if size > MAX_IDX_BYTES:
        raise PoisonlabError(f"{source} declares an IDX array of shape {declared} ({size} bytes), more than "
                             f"the {MAX_IDX_BYTES} allowed; {fix}")
    return size


def _gunzip(raw: bytes, source: str, fix: str, shape: tuple[int, ...] | None) -> bytes:
    """Decompress gzip member by member in 1 MiB steps, never beyond one byte past the size the IDX header declares."""
    out, pending, limit = bytearray(), raw, None
    with decoding(source, fix, "truncated or corrupted"):  # zlib, EOF and any other failure of the bytes
        while pending:
            stream = zlib.decompressobj(wbits=31)
            while not stream.eof:
                chunk = stream.decompress(pending, min(_CHUNK, (limit or MAX_IDX_BYTES) + 1 - len(out)))
                pending = stream.unconsumed_tail
                if not chunk and not pending and not stream.eof:
                    raise EOFError("compressed data ends early")
                out += chunk
                if limit is None and len(out) >= 4 and len(out) >= 4 + 4 * out[3]:
                    limit = _declared_size(bytes(out[:4 + 4 * out[3]]), source, fix, shape)
                if len(out) > (limit or MAX_IDX_BYTES):
                    raise PoisonlabError(f"{source} inflates beyond the {limit or MAX_IDX_BYTES} bytes its IDX header "
                                         f"allows (corrupted or a decompression bomb); {fix}")
            pending = stream.unused_data.lstrip(b"\0")  # gzip allows members back to back, and zero padding
    return bytes(out)
