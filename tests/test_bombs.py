"""No memory bombs: small files that inflate to 1 GiB end in one line (or load) with a bounded peak memory."""

import io
import os
import shutil
import struct
import subprocess
import sys
import tarfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from poisonlab.datasets.idx import MAX_IDX_BYTES, decode_idx_file
from poisonlab.errors import PoisonlabError

BOMB = 1 << 30  # bytes of zeros inside each bomb
BUDGET = 160 << 20  # peak memory a command may add while reading one (far below BOMB)
DRIVER = """
import resource, sys
import numpy, PIL.Image, poisonlab.datasets, poisonlab.defences.integrity, poisonlab.defences.audit
from poisonlab.cli import main
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    main(sys.argv[1:])
except SystemExit as exc:
    code = exc.code
print(code, (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) * 1024)
"""


@pytest.fixture(scope="module")
def zeros() -> tuple[bytes, int]:
    """BOMB zero bytes as non-final raw deflate blocks (about 1 MB), and their length."""
    packer, chunk = zlib.compressobj(9, zlib.DEFLATED, -15), bytes(1 << 20)
    blocks = b"".join(packer.compress(chunk) for _ in range(BOMB // len(chunk)))
    return blocks + packer.flush(zlib.Z_SYNC_FLUSH), BOMB


def gzip_bomb(prefix: bytes, zeros: tuple[bytes, int], suffix: bytes = b"") -> bytes:
    """One valid gzip member holding `prefix`, BOMB zero bytes, then `suffix`."""
    head = zlib.compressobj(9, zlib.DEFLATED, -15)
    tail = zlib.compressobj(9, zlib.DEFLATED, -15)
    crc, chunk = zlib.crc32(prefix), bytes(1 << 20)
    for _ in range(zeros[1] // len(chunk)):
        crc = zlib.crc32(chunk, crc)
    crc = zlib.crc32(suffix, crc)
    body = head.compress(prefix) + head.flush(zlib.Z_SYNC_FLUSH) + zeros[0] + tail.compress(suffix) + tail.flush()
    size = len(prefix) + zeros[1] + len(suffix)
    return b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff" + body + struct.pack("<II", crc, size & 0xFFFFFFFF)


def tar_member_header(name: str, size: int) -> bytes:
    """The 512-byte tar header of a regular file."""
    info = tarfile.TarInfo(name)
    info.size = size
    return info.tobuf(tarfile.GNU_FORMAT)


def small_images_tar() -> bytes:
    """An uncompressed tar (no end marker) of one 4x4 PNG per class and split."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as archive:
        for split in ("train", "test"):
            for name in ("a", "b"):
                png = io.BytesIO()
                Image.fromarray(np.full((4, 4), 9, np.uint8)).save(png, "PNG")
                info = tarfile.TarInfo(f"{split}/{name}/0.png")
                info.size = len(png.getvalue())
                archive.addfile(info, io.BytesIO(png.getvalue()))
    return buf.getvalue()


def png_bomb(width: int, height: int, mode: str, rows: int | None = None) -> bytes:
    """A PNG of 8-bit `mode` (L or RGB) pixels declaring `width` x `height`, with `rows` (default all) rows of zeros."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    packer, row = zlib.compressobj(9), bytes(1 + width * len(mode))
    pixels = b"".join(packer.compress(row) for _ in range(height if rows is None else rows)) + packer.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, {"L": 0, "RGB": 2}[mode], 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")


def run_cli(tmp_path: Path, *args) -> tuple[int, int, list[str]]:
    """Exit code, peak memory added (bytes) and the stderr lines of `poisonlab ARGS` in a fresh process."""
    env = {**os.environ, "POISONLAB_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    done = subprocess.run([sys.executable, "-c", DRIVER, *map(str, args)], capture_output=True, text=True, env=env,
                          timeout=300)
    code, peak = done.stdout.split()[-2:]
    return int(code), int(peak), [line for line in done.stderr.splitlines() if line.strip()]


def test_idx_gzip_bomb_behind_an_official_header(tmp_path: Path, shared_data: Path, zeros) -> None:
    folder = tmp_path / "data" / "mnist"
    folder.mkdir(parents=True)
    for name in ("train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        shutil.copy(shared_data / "mnist" / name, folder / name)
    bomb = gzip_bomb(struct.pack(">2xBB3I", 0x08, 3, 60000, 28, 28), zeros)
    (folder / "train-images-idx3-ubyte.gz").write_bytes(bomb)
    assert len(bomb) < 2 << 20
    code, peak, err = run_cli(tmp_path, "manifest", "build", "--dataset", "mnist", "--data-dir", tmp_path / "data",
                              "--no-download", "--out", tmp_path / "m.json")
    print(f"IDX bomb ({len(bomb)} bytes -> {BOMB + 16} bytes): peak +{peak / 2**20:.1f} MiB")
    assert code == 2 and len(err) == 1 and "inflates beyond the 47040016 bytes its IDX header allows" in err[0]
    assert peak < BUDGET


def test_idx_headers_are_checked_before_inflating() -> None:
    huge = zlib.compress(struct.pack(">2xBB1I", 0x08, 1, 4_000_000_000) + bytes(1000), wbits=31)
    with pytest.raises(PoisonlabError, match=rf"declares an IDX array of shape \(4000000000,\) .* more than the {MAX_IDX_BYTES}"):
        decode_idx_file(huge, "f", None, "fix")
    with pytest.raises(PoisonlabError, match=r"declares an IDX array of shape \(5,\), not the official \(60000,\)"):
        decode_idx_file(zlib.compress(struct.pack(">2xBB1I", 0x08, 1, 5) + bytes(5), wbits=31), "f", None, "fix",
                        (60000,))
    with pytest.raises(PoisonlabError, match="not an IDX file"):
        decode_idx_file(zlib.compress(bytes(10_000_000), wbits=31), "f", None, "fix")
    two_members = zlib.compress(struct.pack(">2xBB1I", 0x08, 1, 3), wbits=31) + zlib.compress(b"\1\2\3", wbits=31)
    assert decode_idx_file(two_members, "f", None, "fix")[0].tolist() == [1, 2, 3]


def test_image_archive_skips_a_huge_non_image_member_unread(tmp_path: Path, zeros) -> None:
    bomb = gzip_bomb(tar_member_header("train/a/notes.bin", BOMB), zeros, small_images_tar() + bytes(1024))
    (tmp_path / "set.tar.gz").write_bytes(bomb)
    code, peak, err = run_cli(tmp_path, "manifest", "build", "--dataset", f"imagefolder:{tmp_path / 'set.tar.gz'}",
                              "--out", tmp_path / "m.json")
    print(f"tar bomb, non-image member ({len(bomb)} bytes -> {BOMB} bytes): peak +{peak / 2**20:.1f} MiB")
    assert code == 0 and peak < BUDGET


def test_image_archive_refuses_a_huge_image_member_unread(tmp_path: Path, zeros) -> None:
    bomb = gzip_bomb(tar_member_header("train/a/big.png", BOMB), zeros, small_images_tar() + bytes(1024))
    (tmp_path / "set.tar.gz").write_bytes(bomb)
    code, peak, err = run_cli(tmp_path, "manifest", "build", "--dataset", f"imagefolder:{tmp_path / 'set.tar.gz'}",
                              "--out", tmp_path / "m.json")
    print(f"tar bomb, image member: peak +{peak / 2**20:.1f} MiB")
    assert code == 2 and len(err) == 1 and f"big.png declares {BOMB} bytes, more than the 67108864 allowed" in err[0]
    assert peak < BUDGET


def test_cifar_archive_bomb_fails_its_checksum_before_being_read(tmp_path: Path, zeros) -> None:
    folder = tmp_path / "data" / "cifar10"
    folder.mkdir(parents=True)
    bomb = gzip_bomb(tar_member_header("cifar-10-batches-bin/data_batch_1.bin", BOMB), zeros, bytes(1024))
    (folder / "cifar-10-binary.tar.gz").write_bytes(bomb)
    code, peak, err = run_cli(tmp_path, "manifest", "build", "--dataset", "cifar10", "--data-dir", tmp_path / "data",
                              "--no-download", "--out", tmp_path / "m.json")
    print(f"CIFAR archive bomb: peak +{peak / 2**20:.1f} MiB")
    assert code == 2 and len(err) == 1 and "checksum mismatch for cifar10 archive" in err[0] and peak < BUDGET


@pytest.mark.parametrize(("width", "height", "mode", "rows", "packed"), [
    (8192, 8192, "RGB", None, "folder"),  # 201 MB of pixels, below Pillow's own limit (89 M pixels)
    (12000, 12000, "L", None, "tar.gz"),  # 144 M pixels: Pillow only warns
    (100_000, 100_000, "RGB", 1, "folder"),  # 30 GB declared: Pillow's own error
])
def test_image_declaring_huge_dimensions_is_refused_before_decoding(tmp_path: Path, width: int, height: int,
                                                                    mode: str, rows: int | None, packed: str) -> None:
    from poisonlab.datasets.imagefiles import MAX_IMAGE_PIXELS

    bomb = png_bomb(width, height, mode, rows)
    with tarfile.open(fileobj=io.BytesIO(small_images_tar())) as archive:
        archive.extractall(tmp_path / "set", filter="data")
    (tmp_path / "set" / "train" / "a" / "1.png").write_bytes(bomb)
    dataset = tmp_path / "set"
    if packed == "tar.gz":
        dataset = tmp_path / "set.tar.gz"
        with tarfile.open(dataset, "w:gz") as archive:
            archive.add(tmp_path / "set", arcname=".")
    code, peak, err = run_cli(tmp_path, "manifest", "build", "--dataset", f"imagefolder:{dataset}",
                              "--out", tmp_path / "m.json")
    print(f"PNG bomb {width}x{height} {mode} in a {packed} ({len(bomb)} bytes -> {width * height * len(mode)} "
          f"bytes of pixels): peak +{peak / 2**20:.1f} MiB")
    assert len(bomb) < 1 << 20 and width * height > MAX_IMAGE_PIXELS
    assert code == 2 and len(err) == 1 and "1.png" in err[0] and "decompression bomb" in err[0], err
    assert f"declares {width}x{height} pixels, more than the {MAX_IMAGE_PIXELS} allowed" in err[0] or rows == 1, err
    assert peak < BUDGET and not (tmp_path / "m.json").exists()


def test_largest_allowed_image_decodes(tmp_path: Path) -> None:
    from poisonlab.datasets.imagefiles import MAX_IMAGE_PIXELS, decode_image

    assert decode_image(png_bomb(4096, MAX_IMAGE_PIXELS // 4096, "L"), "edge.png").shape == (4096, 4096)
    with pytest.raises(PoisonlabError, match=r"^image edge\.png declares 4097x4096 pixels, more than the 16777216"):
        decode_image(png_bomb(4097, 4096, "L"), "edge.png")


def test_many_images_each_allowed_that_add_up_to_a_bomb_are_refused_before_decoding(tmp_path: Path) -> None:
    """42 RGB PNGs of 4096 x 4096 (each inside the per-image limit), 2 MB packed, would decode to 2.1 GB."""
    from poisonlab.datasets.imagefiles import MAX_DATASET_VALUES

    bomb = png_bomb(4096, 4096, "RGB")
    with tarfile.open(tmp_path / "set.tar.gz", "w:gz") as archive:
        for split, count in (("train", 40), ("test", 2)):
            for n in range(count):
                info = tarfile.TarInfo(f"{split}/{'ab'[n % 2]}/{n}.png")
                info.size = len(bomb)
                archive.addfile(info, io.BytesIO(bomb))
    code, peak, err = run_cli(tmp_path, "manifest", "build", "--dataset", f"imagefolder:{tmp_path / 'set.tar.gz'}",
                              "--out", tmp_path / "m.json")
    print(f"42-image aggregate bomb ({(tmp_path / 'set.tar.gz').stat().st_size} bytes packed -> "
          f"{42 * 4096 * 4096 * 3} bytes of pixels): peak +{peak / 2**20:.1f} MiB")
    assert code == 2 and len(err) == 1, err
    assert f"would decode to {42 * 4096 * 4096 * 3} pixel values, more than the {MAX_DATASET_VALUES} allowed" in err[0]
    assert peak < BUDGET and not (tmp_path / "m.json").exists()
