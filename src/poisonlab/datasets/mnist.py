"""MNIST and Fashion-MNIST from their official IDX files (gzip or raw) in `<data_dir>/<name>/`."""

from dataclasses import dataclass
from pathlib import Path

from poisonlab.datasets.checksums import FIX_REDOWNLOAD
from poisonlab.datasets.dataset import Dataset
from poisonlab.datasets.fetch import DownloadFailed, fetch, missing_error
from poisonlab.datasets.idx import MAX_IDX_BYTES, decode_idx_file
from poisonlab.files import read_limited

# Official file names in the order x_train, y_train, x_test, y_test.
FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
SHAPES = ((60000, 28, 28), (60000,), (10000, 28, 28), (10000,))  # the official arrays of both datasets


@dataclass(frozen=True)
class IdxSource:
    """Where an IDX dataset comes from and what its decompressed files must hash to."""

    name: str
    mirrors: tuple[str, ...]
    md5: tuple[str, str, str, str]
    classes: tuple[str, ...]
    sha256: tuple[str, str, str, str]  # of the decompressed content, beside the official MD5s


SOURCES = {
    "mnist": IdxSource(
        "mnist",
        ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"),
        ("6bbc9ace898e44ae57da46a324031adb", "a25bea736e30d166cdddb491f175f624",
         "2646ac647ad5339dbf082846283269ea", "27ae3e4e09519cfbb04c329615203637"),
        tuple(str(digit) for digit in range(10)),
        ("ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
         "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
         "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
         "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2"),
    ),
    "fashion_mnist": IdxSource(
        "fashion_mnist",
        ("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        ("f4a8712d7a061bf5bd6d2ca38dc4d50a", "9018921c3c673c538a1fc5bad174d6f9",
         "8181f5470baa50b63fa0f6fddb340f0a", "15d484375f8d13e6eb1aabb0c3f46965"),
        ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
        ("c59f468a2f672dc815687fe0f83887768d799fd8a3f3276145d20f83aa44d888",
         "bad3541b69d912435c50bb6ba87bec294ff4f6a2e1246121d8633921760443d9",
         "5b4141f0afbad91edebe8549f8fcffe087ea10ca49f1dbef5c9a5cd8815ce37b",
         "0402a96d92fd2663957122ceb108a494c5af83dab82d92729df917d7dec38c34"),
    ),
}


def load_idx_dataset(source: IdxSource, folder: Path, download: bool) -> Dataset:
    """Load the four IDX files from `folder`, downloading missing ones, each verified by MD5 and SHA-256."""
    paths = {name: _find(folder, name) for name in FILES}
    missing = [name for name, path in paths.items() if path is None]
    if missing:
        paths.update(_obtain(source, folder, missing, download))
    arrays, sources = [], {}
    for name, md5, sha256, shape in zip(FILES, source.md5, source.sha256, SHAPES):
        path = paths[name]
        label = f"{source.name} file {path}"
        array, checked = decode_idx_file(read_limited(path, label, MAX_IDX_BYTES, FIX_REDOWNLOAD), label, f"md5:{md5}", FIX_REDOWNLOAD,
                                         shape, f"sha256:{sha256}")
        arrays.append(array)
        sources[path.name] = checked
    x_train, y_train, x_test, y_test = arrays
    return Dataset(source.name, x_train[..., None], y_train.astype("int64"), x_test[..., None],
                   y_test.astype("int64"), list(source.classes), sources, [])


def _find(folder: Path, name: str) -> Path | None:
    """The gzip copy of an IDX file if present, else the raw one, else None."""
    return next((path for path in (folder / f"{name}.gz", folder / name) if path.is_file()), None)


def _obtain(source: IdxSource, folder: Path, names: list[str], download: bool) -> dict[str, Path]:
    """Download the missing files, or raise the error that says which to place where."""
    reason, fetched = "downloading is disabled", {}
    if download:
        try:
            for name in names:
                dest = folder / f"{name}.gz"
                sha256 = source.sha256[FILES.index(name)]
                fetch([mirror + dest.name for mirror in source.mirrors], dest, f"sha256:{sha256}", of_decompressed=True)
                fetched[name] = dest
            return fetched
        except DownloadFailed as exc:
            reason = exc.reason
    still_missing = [f"{name}.gz" for name in names if name not in fetched]
    raise missing_error(source.name, folder, still_missing, source.mirrors[0], reason)
