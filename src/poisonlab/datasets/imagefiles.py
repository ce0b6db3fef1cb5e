"""Find and decode the images of a `<split>/<class>/<file>` folder, given as a directory or a tar(.gz)."""

import hashlib
import io
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from poisonlab.datasets.checksums import file_digest
from poisonlab.datasets.tarread import iter_files
from poisonlab.errors import PoisonlabError, decoding

SPLITS = ("train", "test")
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"})
MAX_IMAGE_BYTES = 64 << 20  # one image file; larger ones are refused unread
MAX_IMAGE_PIXELS = 1 << 24  # one image (4096 x 4096); larger ones are refused before decoding (Pillow warns at 89M)
MAX_DATASET_VALUES = 1 << 30  # decoded uint8 values of a whole folder (1 GiB; all of CIFAR-10 is 184 MB)
GREY_MODES = ("1", "L", "I;16", "I;16B", "I;16L", "I;16N", "I")  # decoded single-channel
_FIX = "re-create the archive from a good copy of the folder"


def iter_images(root: Path, digest: list[str] | None = None) -> Iterator[tuple[str, bytes]]:
    """Yield ("<split>/<class>/<file>", bytes) per image; an archive may wrap the folder in one top directory.

    With `digest`, the content digest of exactly the bytes read is appended once all are read (`source_digest`)."""
    if root.is_dir():
        yield from _iter_directory(root, digest)
        return
    wrapper = None
    for name, data in iter_files(root, f"image-folder archive {root}", _FIX, wanted=_is_image_member,
                                 max_bytes=MAX_IMAGE_BYTES, digest=digest):
        parts = name.split("/")
        top = "/".join(parts[:-3])
        if wrapper is not None and top != wrapper:
            raise PoisonlabError(f"image-folder archive {root} has train/test folders under both {wrapper or '.'!r} "
                                 f"and {top or '.'!r}; keep a single train/ and test/ pair per archive")
        wrapper = top
        yield "/".join(parts[-3:]), data


def declared_values(data: bytes, name: str) -> int:
    """The uint8 values image `name` decodes to (H * W, times 3 unless grey), from its header alone.

    An image over MAX_IMAGE_PIXELS, or of float pixels (TIFF mode F, which have no fixed range), is refused."""
    with warnings.catch_warnings(), decoding(f"image {name}", "remove or replace that file"):
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # refused below, at a lower limit
        with Image.open(io.BytesIO(data)) as image:  # reads the header only
            (width, height), mode = image.size, image.mode
    if width * height > MAX_IMAGE_PIXELS:
        raise PoisonlabError(f"image {name} declares {width}x{height} pixels, more than the {MAX_IMAGE_PIXELS} "
                             "allowed (a decompression bomb?); remove that file or shrink it")
    if mode == "F":
        raise PoisonlabError(f"image {name} holds float pixels (mode F), which have no fixed range; save it as an "
                             "8-bit image")
    return width * height * (1 if mode in GREY_MODES else 3)


def decode_image(data: bytes, name: str) -> np.ndarray:
    """Decode to uint8 (H, W) when the image is grey (16-bit grey scaled to 8 bits), else to (H, W, 3) RGB.

    The header is checked first (see `declared_values`): a refused image is never decoded."""
    declared_values(data, name)
    with decoding(f"image {name}", "remove or replace that file"), Image.open(io.BytesIO(data)) as image:
        if image.mode.startswith("I"):  # 16-bit grey (PNG) as 0..65535 integers: scaled, not clipped at 255
            wide = np.asarray(image, dtype=np.int64)
            if wide.size and (wide.min() < 0 or wide.max() > 65535):
                raise PoisonlabError(f"image {name} holds 32-bit pixel values outside 0..65535; save it as an 8- or "
                                     "16-bit image")
            return ((wide * 255 + 32767) // 65535).astype(np.uint8)
        return np.asarray(image.convert("L" if image.mode in GREY_MODES else "RGB"))


def source_digest(root: Path) -> str:
    """The "sha256:<hex>" of every byte an image folder is decoded from.

    That is the archive file, or each image's path and content in a directory."""
    if root.is_file():
        return file_digest(root, "sha256")
    digest: list[str] = []
    for _ in iter_images(root, digest):
        pass
    return digest[0]


def _iter_directory(root: Path, digest: list[str] | None) -> Iterator[tuple[str, bytes]]:
    """Images of a directory tree, in sorted order; `digest` gets the SHA-256 over their paths and contents."""
    tree = hashlib.sha256()
    for split in SPLITS:
        for class_dir in sorted(p for p in (root / split).glob("*") if p.is_dir()):
            for path in sorted(p for p in class_dir.iterdir() if p.is_file() and _is_image(p.name)):
                name = f"{split}/{class_dir.name}/{path.name}"
                try:
                    with path.open("rb") as handle:
                        data = handle.read(MAX_IMAGE_BYTES + 1)
                except OSError as exc:
                    raise PoisonlabError(f"cannot read image {path} ({exc.strerror}); check its permissions") from None
                if len(data) > MAX_IMAGE_BYTES:
                    raise PoisonlabError(f"image {path} is larger than {MAX_IMAGE_BYTES} bytes; "
                                         "remove it or shrink it")
                tree.update(f"{name}\0{hashlib.sha256(data).hexdigest()}\0".encode())
                yield name, data
    if digest is not None:
        digest.append(f"sha256:{tree.hexdigest()}")


def _is_image_member(name: str) -> bool:
    """Whether an archive member is a `[top/]<split>/<class>/<image>` file worth reading."""
    parts = name.split("/")
    return len(parts) in (3, 4) and parts[-3] in SPLITS and _is_image(parts[-1])


def _is_image(name: str) -> bool:
    """Whether a file name has an image suffix and is not hidden."""
    return not name.startswith(".") and Path(name).suffix.lower() in IMAGE_SUFFIXES
