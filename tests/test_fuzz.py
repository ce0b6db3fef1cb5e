"""Fuzzing the readers with hypothesis: any bytes or JSON give a result or a PoisonlabError, never another exception."""

import gzip
import io
import json
import struct
import tarfile
import tempfile
import zlib
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from fuzzing import examples

from poisonlab import store
from poisonlab.attacks import humanlabels
from poisonlab.datasets.cifar import parse_cifar_records
from poisonlab.datasets.idx import decode_idx_file, encode_idx
from poisonlab.datasets.imagefiles import decode_image
from poisonlab.datasets.order import read_order
from poisonlab.datasets.tarread import iter_files
from poisonlab.defences import integrity
from poisonlab.errors import PoisonlabError

FUZZ = settings(max_examples=examples(60), deadline=None, suppress_health_check=[HealthCheck.too_slow])
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                    max_leaves=20)


def mutated(valid: bytes) -> st.SearchStrategy[bytes]:
    """`valid` truncated, with bytes overwritten, or extended: close to a good file, where parsers break."""
    edits = st.lists(st.tuples(st.integers(0, max(len(valid) - 1, 0)), st.integers(0, 255)), max_size=6)
    return st.builds(lambda cut, changes, tail: _apply(valid[:cut], changes) + tail,
                     st.integers(0, len(valid)), edits, st.binary(max_size=16))


def _apply(data: bytes, changes: list[tuple[int, int]]) -> bytes:
    out = bytearray(data)
    for where, value in changes:
        if where < len(out):
            out[where] = value
    return bytes(out)


def only_our_errors(call, *args) -> None:
    try:
        call(*args)
    except PoisonlabError:
        pass


IDX = encode_idx(np.arange(24, dtype=np.uint8).reshape(2, 3, 4))


@FUZZ
@given(st.one_of(mutated(IDX), mutated(gzip.compress(IDX)), st.binary(max_size=64)))
def test_idx(data: bytes) -> None:
    only_our_errors(decode_idx_file, data, "f", None, "fix")
    only_our_errors(decode_idx_file, data, "f", None, "fix", (2, 3, 4))


@FUZZ
@given(st.binary(max_size=8000), st.sampled_from([1, 2]))
def test_cifar_records(data: bytes, label_bytes: int) -> None:
    only_our_errors(parse_cifar_records, data, label_bytes)


def _small_tar() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as archive:
        for name in ("train/a/0.png", "test/a/0.png", "../x"):
            info = tarfile.TarInfo(name)
            info.size = 3
            archive.addfile(info, io.BytesIO(b"abc"))
    return buf.getvalue()


@FUZZ
@given(st.one_of(mutated(_small_tar()), st.binary(max_size=600)))
def test_tar(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "a.tar.gz"
        path.write_bytes(data)
        only_our_errors(lambda: list(iter_files(path, "archive", "fix", digest=[])))


def _png() -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.arange(18, dtype=np.uint8).reshape(2, 3, 3)).save(buf, "PNG")
    return buf.getvalue()


def _forged_png(width: int, height: int) -> bytes:
    """A grey PNG whose header (with a valid CRC) declares `width` x `height` over 64 bytes of pixel data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(bytes(64)))
            + chunk(b"IEND", b""))


@FUZZ
@given(st.one_of(mutated(_png()), st.builds(_forged_png, st.integers(1, 2**31 - 1), st.integers(1, 2**31 - 1)),
                 st.binary(max_size=64)))
def test_image(data: bytes) -> None:
    only_our_errors(decode_image, data, "f.png")


@FUZZ
@given(st.text(max_size=200), st.lists(st.tuples(st.integers(-2, 4), st.integers(-1, 3), st.sampled_from(
    ["train/a/0.png", "train/b/1.png", "x", "", "train/a/0.png,extra"])), max_size=5))
def test_order_csv(noise: str, rows: list) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "order.csv"
        path.write_text("index,label,path\n" + "".join(f"{i},{label},{name}\n" for i, label, name in rows) + noise)
        only_our_errors(read_order, path, ["train/a/0.png", "train/b/1.png"], np.array([0, 1]))


def _npz() -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, clean_label=np.zeros(50000, np.int64), aggre_label=np.ones(50000, np.int64))
    return buf.getvalue()


# Damaged files that once escaped as raw exceptions (one byte changed at OFFSET): zlib.error (a bad deflate block),
# tokenize.TokenError and SyntaxError (the .npy header), NotImplementedError (compression method), RuntimeError
# (the "encrypted" flag).
ESCAPED_NPZ = [(82, 132), (151, 169), (677, 25), (1311, 222), (1369, 143)]


@FUZZ
@given(st.one_of(mutated(_npz()), st.binary(max_size=300)))
@example(_apply(_npz(), ESCAPED_NPZ[0:1]))
@example(_apply(_npz(), ESCAPED_NPZ[1:2]))
@example(_apply(_npz(), ESCAPED_NPZ[2:3]))
@example(_apply(_npz(), ESCAPED_NPZ[3:4]))
@example(_apply(_npz(), ESCAPED_NPZ[4:5]))
def test_cifar_n_labels(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "cifar10n_labels.npz"
        path.write_bytes(data)
        only_our_errors(humanlabels.read, path, ["aggre"])


@FUZZ
@given(JSON, st.booleans())
def test_manifest(doc, as_manifest: bool) -> None:
    if as_manifest and isinstance(doc, dict):
        doc = {**doc, "format": integrity.FORMAT}
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "m.json"
        path.write_text(json.dumps(doc))
        try:
            manifest = integrity.read(path)
        except PoisonlabError:
            return
        assert isinstance(integrity.self_check(manifest), list)
        assert isinstance(integrity.check_signature(manifest, None), tuple)


@FUZZ
@given(JSON, st.booleans())
def test_run_json(doc, complete: bool) -> None:
    if complete and isinstance(doc, dict):
        doc = {**doc, "status": "complete", "config": doc.get("config", {}), "metrics": doc.get("metrics", {})}
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / store.RUN_FILE).write_text(json.dumps(doc))
        (Path(folder) / store.WEIGHTS_FILE).write_bytes(struct.pack("<Q", 2) + b"{}")
        run = store.read_run(Path(folder))
        if run is not None:
            assert store.row_problem(run) is None or "damaged" in store.row_problem(run)
            only_our_errors(store.field, run, "metrics.confusion", list, list)


@FUZZ
@given(st.one_of(st.binary(max_size=2000), mutated(b"SQLite format 3\x00" + bytes(600))))
def test_results_sqlite(data: bytes) -> None:
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / store.DB_FILE).write_bytes(data)
        only_our_errors(store.results, Path(folder))
