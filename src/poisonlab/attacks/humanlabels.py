"""CIFAR-10N human labels: parse `cifar10n:KEY[,KEY]`, read and verify the .npz, and compare with the clean labels."""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.lib import format as npformat

from poisonlab.datasets import resolve_data_dir
from poisonlab.datasets.checksums import digest
from poisonlab.checks import check_choice
from poisonlab.errors import PoisonlabError, decoding
from poisonlab.files import read_limited

SOURCE = "cifar10n"
CIFAR10N = {"aggre": "aggre_label", "worse": "worse_label", "random1": "random_label1", "random2": "random_label2",
            "random3": "random_label3"}
CLEAN = "clean_label"
N_TRAIN, NUM_CLASSES = 50000, 10
FILE = Path("cifar_n") / "cifar10n_labels.npz"
FIX = "give the path of the official cifar10n_labels.npz (keys clean_label, aggre_label, worse_label, random_label1..3)"
MAX_FILE_BYTES = 16 << 20  # the official file is 150 kB; each of its arrays 400 kB


@dataclass(frozen=True)
class HumanLabels:
    """One CIFAR-10N label set over the 50000 training items in official order, with the clean labels and provenance."""

    key: str
    path: Path
    sha256: str
    labels: np.ndarray
    clean: np.ndarray

    @property
    def kind(self) -> str:
        """The label-set name used as a run's kind, e.g. "cifar10n:aggre"."""
        return f"{SOURCE}:{self.key}"

    def percent(self, n: int) -> float:
        """Measured noise rate in percent over the first `n` training items (0 = all)."""
        n = n or len(self.labels)
        return 100 * int(np.count_nonzero(self.labels[:n] != self.clean[:n])) / n

    def apply(self, y_train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The human labels of the first len(y_train) items and the mask where they differ, after checking the clean labels match."""
        n = len(y_train)
        if not np.array_equal(self.clean[:n], y_train):
            raise PoisonlabError(f"the clean labels in {self.path} differ from the loaded CIFAR-10 training labels; load "
                                 "CIFAR-10 in the official training order (binary release, or the JPEG copy with its order file)")
        labels = self.labels[:n].copy()
        return labels, labels != y_train

    def provenance(self, mask: np.ndarray) -> dict:
        """The run.json record of where the labels came from and how noisy the used items are."""
        return {"spec": self.kind, "array": CIFAR10N[self.key], "file": str(self.path.resolve()), "sha256": self.sha256,
                "n_items": len(mask), "n_noisy": int(mask.sum()), "noise_rate": float(mask.mean())}


def is_kind(kind: str) -> bool:
    """True for a run kind that names human labels ("cifar10n:KEY") rather than synthetic poisoning."""
    return kind.startswith(f"{SOURCE}:")


def parse(spec: str) -> list[str]:
    """The keys of `spec` ("cifar10n:aggre,random1,worse"), each checked against CIFAR10N."""
    source, _, rest = spec.strip().partition(":")
    keys = [k.strip() for k in rest.split(",") if k.strip()]
    if source != SOURCE or not keys:
        raise PoisonlabError(f"unknown label set '{spec}'; write {SOURCE}:KEY[,KEY] with KEY from {', '.join(CIFAR10N)}")
    for key in keys:
        check_choice(key, CIFAR10N, f"{SOURCE} label set")
    return list(dict.fromkeys(keys))


def request(spec: str, dataset_names: list[str], conflicts: list[str]) -> list[str]:
    """The keys of `spec`, after checking every dataset is CIFAR-10 and no poisoning option (`conflicts`) was given."""
    keys = parse(spec)
    if conflicts:
        raise PoisonlabError(f"human labels replace poisoning; leave out {', '.join(conflicts)}")
    for name in dataset_names:
        if name.strip() != "cifar10":
            raise PoisonlabError(f"CIFAR-10N labels belong to CIFAR-10, not {name}; use dataset cifar10")
    return keys


def one(spec: str, dataset_name: str, cifar_n: Path | None, data_dir: Path | None,
        conflicts: list[str]) -> HumanLabels:
    """The one label set `spec` ("cifar10n:KEY") names, checked (CIFAR-10, no poisoning option among `conflicts`,
    one key) and read from `cifar_n` or the dataset folder."""
    keys = request(spec, [dataset_name], conflicts)
    if len(keys) != 1:
        raise PoisonlabError(f"one CIFAR-10N label set is needed here, got {len(keys)} ({spec}); run one study each")
    return read(labels_file(cifar_n, data_dir), keys)[0]


def default_path(data_dir: Path) -> Path:
    """Where the labels live in a dataset folder: <data-dir>/cifar_n/cifar10n_labels.npz."""
    return data_dir / FILE


def labels_file(cifar_n: Path | None, data_dir: Path | None) -> Path:
    """The --cifar-n file, else the one in the dataset cache folder."""
    return cifar_n or default_path(resolve_data_dir(data_dir))


def read(path: Path, keys: list[str]) -> list[HumanLabels]:
    """The label sets `keys` from the .npz at `path` (no pickle), each verified: 50000 labels in 0..9.

    Every array header is checked (shape, dtype) before its data is read, so a header declaring 10^12 items costs
    nothing, and any decoding failure of the zip, deflate or .npy layers is the one-line error."""
    if not path.is_file():
        raise PoisonlabError(f"CIFAR-10N labels file {path} not found; {FIX}")
    data = read_limited(path, f"CIFAR-10N labels file {path}", MAX_FILE_BYTES, FIX)
    wanted = (CLEAN, *(CIFAR10N[k] for k in keys))
    with decoding(f"CIFAR-10N labels from {path}", FIX), zipfile.ZipFile(io.BytesIO(data)) as archive:
        members = {info.filename.removesuffix(".npy"): info for info in archive.infolist()}
        arrays = {name: _member(archive, members[name], path) for name in wanted if name in members}
    checked = {name: _check(arrays, name, path) for name in wanted}
    sha = digest(data, "sha256")
    return [HumanLabels(k, path, sha, checked[CIFAR10N[k]], checked[CLEAN]) for k in keys]


def _member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path) -> np.ndarray:
    """One .npy member as an array, its header (shape, dtype, no pickled objects) checked before any data is read."""
    if info.file_size > MAX_FILE_BYTES:
        raise PoisonlabError(f"{path} member {info.filename} inflates beyond {MAX_FILE_BYTES} bytes; {FIX}")
    with archive.open(info) as member:
        version = npformat.read_magic(member)
        shape, fortran, dtype = (npformat.read_array_header_1_0 if version == (1, 0)
                                 else npformat.read_array_header_2_0)(member)
        name = info.filename.removesuffix(".npy")
        if shape != (N_TRAIN,) or dtype.kind not in "iu" or dtype.itemsize > 8:
            raise PoisonlabError(f"'{name}' in {path} holds {dtype} {shape}, not {N_TRAIN} integer labels; {FIX}")
        raw = member.read(N_TRAIN * dtype.itemsize + 1)
    if len(raw) != N_TRAIN * dtype.itemsize:
        raise PoisonlabError(f"'{name}' in {path} is truncated or has trailing bytes; {FIX}")
    return np.frombuffer(raw, dtype).copy()


def _check(arrays: dict[str, np.ndarray], name: str, path: Path) -> np.ndarray:
    """Array `name` as int64 labels, or a one-line error when it is missing, the wrong length or out of range."""
    if name not in arrays:
        raise PoisonlabError(f"{path} has no '{name}' array; {FIX}")
    values = arrays[name]
    if values.shape != (N_TRAIN,) or values.dtype.kind not in "iu":
        raise PoisonlabError(f"'{name}' in {path} holds {values.dtype} {values.shape}, not {N_TRAIN} integer labels; {FIX}")
    if values.min() < 0 or values.max() >= NUM_CLASSES:
        raise PoisonlabError(f"'{name}' in {path} has labels outside 0..{NUM_CLASSES - 1}; {FIX}")
    return values.astype(np.int64)
