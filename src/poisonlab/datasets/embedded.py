"""The Fashion-MNIST subset shipped inside the package: works with no data folder and no network."""

import json
from importlib.resources import files

from poisonlab.datasets.dataset import Dataset
from poisonlab.datasets.idx import decode_idx_file
from poisonlab.datasets.mnist import FILES, SOURCES
from poisonlab.errors import PoisonlabError

FIX = "reinstall poisonlab (its embedded dataset is damaged)"


def load_embedded() -> Dataset:
    """10000 train / 2000 test Fashion-MNIST images, balanced per class, each file verified by md5."""
    folder = files("poisonlab").joinpath("data", "embedded")
    arrays, sources = [], {}
    try:
        provenance = json.loads(folder.joinpath("provenance.json").read_text())
        for file_name in (f"{name}.gz" for name in FILES):
            array, checked = decode_idx_file(folder.joinpath(file_name).read_bytes(), f"embedded file {file_name}",
                                             provenance["md5"][file_name], FIX)
            arrays.append(array)
            sources[file_name] = checked
    except (OSError, ValueError, KeyError) as exc:
        raise PoisonlabError(f"cannot read the embedded dataset ({exc!r}); {FIX}") from None
    x_train, y_train, x_test, y_test = arrays
    note = (f"embedded stratified subset of Fashion-MNIST ({provenance['per_class']['train']} train / "
            f"{provenance['per_class']['test']} test per class, seed {provenance['seed']}, original order); "
            "MIT licence, Zalando Research (see the NOTICE file)")
    return Dataset("embedded", x_train[..., None], y_train.astype("int64"), x_test[..., None],
                   y_test.astype("int64"), list(SOURCES["fashion_mnist"].classes), sources, [note])
