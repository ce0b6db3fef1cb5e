"""Find and decode the images of a `<split>/<class>/<file>` folder, given as a directory or a tar(.gz)."""

import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from PIL import Image

from poisonlab.datasets.tarread import iter_files
from poisonlab.errors import PoisonlabError

SPLITS = ("train", "test")
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"})
_FIX = "re-create the archive from a good copy of the folder"


def iter_images(root: Path) -> Iterator[tuple[str, bytes]]:
    """Yield ("<split>/<class>/<file>", bytes) per image; an archive may wrap the folder in one top directory."""
    if root.is_dir():
        yield from _iter_directory(root)
        return
    wrapper = None
    for name, data in iter_files(root, f"image-folder archive {root}", _FIX):
        parts = name.split("/")
        if len(parts) not in (3, 4) or parts[-3] not in SPLITS or not _is_image(parts[-1]):
            continue
        top = "/".join(parts[:-3])
        if wrapper is not None and top != wrapper:
            raise PoisonlabError(f"image-folder archive {root} has train/test folders under both {wrapper or '.'!r} "
                                 f"and {top or '.'!r}; keep a single train/ and test/ pair per archive")
        wrapper = top
        yield "/".join(parts[-3:]), data


def decode_image(data: bytes, name: str) -> np.ndarray:
    """Decode to uint8 (H, W) when the image is grey, else to (H, W, 3) RGB."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            return np.asarray(image.convert("L" if image.mode in ("1", "L") else "RGB"))
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise PoisonlabError(f"cannot decode image {name} ({exc}); remove or replace that file") from None


def _iter_directory(root: Path) -> Iterator[tuple[str, bytes]]:
    """Images of a directory tree, in sorted order."""
    for split in SPLITS:
        for class_dir in sorted(p for p in (root / split).glob("*") if p.is_dir()):
            for path in sorted(p for p in class_dir.iterdir() if p.is_file() and _is_image(p.name)):
                try:
                    data = path.read_bytes()
                except OSError as exc:
                    raise PoisonlabError(f"cannot read image {path} ({exc.strerror}); check its permissions") from None
                yield f"{split}/{class_dir.name}/{path.name}", data


def _is_image(name: str) -> bool:
    """Whether a file name has an image suffix and is not hidden."""
    return not name.startswith(".") and Path(name).suffix.lower() in IMAGE_SUFFIXES
