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
from poisonlab.errors import PoisonlabError

SPLITS = ("train", "test")
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"})
MAX_IMAGE_BYTES = 64 << 20  # one image file; larger ones are refused unread
MAX_IMAGE_PIXELS = 1 << 24  # one image (4096 x 4096); larger ones are refused before decoding (Pillow warns at 89M)
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


def decode_image(data: bytes, name: str) -> np.ndarray:
    """Decode to uint8 (H, W) when the image is grey, else to (H, W, 3) RGB.

    The size its header declares is checked first: over MAX_IMAGE_PIXELS, nothing is decoded."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)  # refused below, at a lower limit
            with Image.open(io.BytesIO(data)) as image:  # reads the header only
                width, height = image.size
                if width * height <= MAX_IMAGE_PIXELS:
                    return np.asarray(image.convert("L" if image.mode in ("1", "L") else "RGB"))
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise PoisonlabError(f"cannot decode image {name} ({exc}); remove or replace that file") from None
    raise PoisonlabError(f"image {name} declares {width}x{height} pixels, more than the {MAX_IMAGE_PIXELS} allowed "
                         "(a decompression bomb?); remove that file or shrink it")


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
