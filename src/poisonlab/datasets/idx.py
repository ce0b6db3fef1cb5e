"""The IDX array format of MNIST and Fashion-MNIST (optionally gzip-compressed)."""

import gzip
import struct
import zlib

import numpy as np

from poisonlab.datasets.checksums import check, digest
from poisonlab.errors import PoisonlabError

# IDX type code -> big-endian numpy dtype.
_TYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_GZIP_MAGIC = b"\x1f\x8b"


def parse_idx(data: bytes, source: str) -> np.ndarray:
    """Decode an uncompressed IDX file into a native-endian array of its declared shape."""
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] not in _TYPES:
        raise PoisonlabError(f"{source} is not an IDX file (bad magic number {data[:4].hex()}); "
                             "replace it with an official IDX file")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise PoisonlabError(f"{source} is truncated inside its IDX header; replace it with a good copy")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    dtype = np.dtype(_TYPES[data[2]])
    needed = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) != needed:
        raise PoisonlabError(f"{source} has {len(data)} bytes but its IDX header {shape} needs {needed} "
                             "(truncated or corrupted); replace it with a good copy")
    return np.frombuffer(data, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def encode_idx(array: np.ndarray) -> bytes:
    """Encode a uint8 array as an uncompressed IDX file."""
    if array.dtype != np.uint8:
        raise ValueError(f"encode_idx writes uint8 arrays only, got {array.dtype}")
    return struct.pack(f">2xBB{array.ndim}I", 0x08, array.ndim, *array.shape) + array.tobytes()


def decode_idx_file(raw: bytes, source: str, expected_md5: str | None, fix: str) -> tuple[np.ndarray, str]:
    """Gunzip `raw` if needed, check the md5 of the IDX content, and return (array, "md5:<hex>")."""
    compressed = raw[:2] == _GZIP_MAGIC
    try:
        data = gzip.decompress(raw) if compressed else raw
    except (OSError, EOFError, zlib.error) as exc:
        raise PoisonlabError(f"{source} is truncated or corrupted ({exc}); {fix}") from None
    checked = digest(data, "md5")
    if expected_md5:
        check(checked, expected_md5, source, fix, compressed)
    return parse_idx(data, source), checked
