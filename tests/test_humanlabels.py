"""CIFAR-10N human labels: spec parsing, the real file's noise rates, the clean-label check and bad files."""

import numpy as np
import pytest

from poisonlab.attacks import humanlabels
from poisonlab.errors import PoisonlabError

ALL_KEYS = ["aggre", "worse", "random1", "random2", "random3"]


@pytest.fixture(scope="module")
def labels_file(shared_data):
    return shared_data / "cifar_n" / "cifar10n_labels.npz"


@pytest.fixture(scope="module")
def arrays(labels_file):
    with np.load(labels_file, allow_pickle=False) as npz:
        return {name: npz[name].astype(np.int64) for name in npz.files}


def test_parse_keeps_the_keys_in_order_once():
    assert humanlabels.parse("cifar10n:aggre, random1,worse,aggre") == ["aggre", "random1", "worse"]
    assert humanlabels.is_kind("cifar10n:worse") and not humanlabels.is_kind("random")


@pytest.mark.parametrize("spec, message", [
    ("cifar10n:best", "unknown cifar10n label set 'best'; choose one of aggre, worse, random1, random2, random3"),
    ("cifar100n:aggre", "unknown label set 'cifar100n:aggre'; write cifar10n:KEY"),
    ("cifar10n:", "unknown label set 'cifar10n:'; write cifar10n:KEY"),
])
def test_bad_specs_are_one_line(spec, message):
    with pytest.raises(PoisonlabError) as excinfo:
        humanlabels.parse(spec)
    assert str(excinfo.value).startswith(message) and "\n" not in str(excinfo.value)


def test_measured_noise_rates_of_the_real_file(labels_file, shared_data):
    sets = humanlabels.read(labels_file, ALL_KEYS)
    rates = {s.key: s.percent(0) for s in sets}
    assert rates == {"aggre": 9.01, "worse": 40.208, "random1": 17.234, "random2": 18.122, "random3": 17.64}
    assert [s.kind for s in sets] == [f"cifar10n:{k}" for k in ALL_KEYS]
    listed = dict(line.split()[::-1] for line in (shared_data / "SHA256SUMS").read_text().splitlines())
    assert sets[0].sha256 == "sha256:" + listed["cifar_n/cifar10n_labels.npz"]


def test_percent_counts_only_the_first_items(labels_file, arrays):
    (worse,) = humanlabels.read(labels_file, ["worse"])
    expected = 100 * np.mean(arrays["worse_label"][:1000] != arrays["clean_label"][:1000])
    assert worse.percent(1000) == pytest.approx(expected, abs=1e-12) and worse.percent(1000) != worse.percent(0)


def test_apply_gives_the_human_labels_and_the_mask(labels_file, arrays):
    (aggre,) = humanlabels.read(labels_file, ["aggre"])
    clean = arrays["clean_label"][:700]
    labels, mask = aggre.apply(clean)
    assert np.array_equal(labels, arrays["aggre_label"][:700]) and np.array_equal(mask, labels != clean)
    assert 0 < mask.sum() < 700
    with pytest.raises(PoisonlabError, match="differ from the loaded CIFAR-10 training labels; load CIFAR-10 in the official"):
        aggre.apply(np.roll(clean, 1))


def write_npz(path, arrays, **changes):
    np.savez(path, **{**arrays, **changes})
    return path


@pytest.mark.parametrize("change, message", [
    ({"worse_label": None}, "has no 'worse_label' array; give the path of the official cifar10n_labels.npz"),
    ({"worse_label": np.zeros(49999, np.uint8)}, "'worse_label' in .* holds uint8 \\(49999,\\), not 50000 integer labels"),
    ({"clean_label": np.full(50000, 0.5)}, "'clean_label' in .* holds float64 \\(50000,\\), not 50000 integer labels"),
    ({"worse_label": np.full(50000, 10, np.uint8)}, "'worse_label' in .* has labels outside 0..9"),
])
def test_bad_arrays_name_the_file_and_the_fix(tmp_path, arrays, change, message):
    kept = {k: v for k, v in arrays.items() if change.get(k, 0) is not None}
    path = write_npz(tmp_path / "labels.npz", kept, **{k: v for k, v in change.items() if v is not None})
    with pytest.raises(PoisonlabError, match=message):
        humanlabels.read(path, ["worse"])


def test_missing_corrupt_or_pickled_file(tmp_path, arrays):
    with pytest.raises(PoisonlabError, match=r"CIFAR-10N labels file .*nothing.npz not found; give the path of the official cifar10n_labels.npz"):
        humanlabels.read(tmp_path / "nothing.npz", ["aggre"])
    (tmp_path / "corrupt.npz").write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(PoisonlabError, match=r"cannot read CIFAR-10N labels from .*corrupt.npz \(.*\); give the path of the official"):
        humanlabels.read(tmp_path / "corrupt.npz", ["aggre"])
    pickled = write_npz(tmp_path / "pickled.npz", arrays, aggre_label=np.array([{"label": 1}], dtype=object))
    with pytest.raises(PoisonlabError, match=r"'aggre_label' in .*pickled.npz holds object \(1,\), not 50000 integer"):
        humanlabels.read(pickled, ["aggre"])


def test_a_header_declaring_a_huge_array_is_refused_before_reading(tmp_path, arrays):
    """A .npy header may declare (10**12,) items: the shape is checked before anything is allocated."""
    import io
    import zipfile

    from numpy.lib import format as npformat

    path = tmp_path / "labels.npz"
    np.savez(path, **{name: values for name, values in arrays.items() if name != "worse_label"})
    header = io.BytesIO()
    npformat.write_array_header_1_0(header, {"descr": "<i8", "fortran_order": False, "shape": (10**12,)})
    with zipfile.ZipFile(path, "a") as archive:
        archive.writestr("worse_label.npy", header.getvalue() + bytes(64))
    with pytest.raises(PoisonlabError, match=r"'worse_label' in .* holds int64 \(1000000000000,\), not 50000"):
        humanlabels.read(path, ["worse"])


def test_default_path_is_inside_the_data_folder(tmp_path):
    assert humanlabels.default_path(tmp_path) == tmp_path / "cifar_n" / "cifar10n_labels.npz"
