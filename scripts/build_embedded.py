"""Build the embedded Fashion-MNIST subset shipped in src/poisonlab/data/embedded/ from a full local copy."""

import argparse
import gzip
import hashlib
import json
import sys
from pathlib import Path

import numpy as np

from poisonlab.datasets.idx import encode_idx
from poisonlab.datasets.mnist import FILES, SOURCES, load_idx_dataset

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "src" / "poisonlab" / "data" / "embedded"
PER_CLASS = {"train": 1000, "test": 200}
SEED = 0
NOTICE = """\
This folder holds a subset of Fashion-MNIST (https://github.com/zalandoresearch/fashion-mnist):
10000 training and 2000 test images, 1000 and 200 per class, chosen as recorded in provenance.json.
Fashion-MNIST is by Zalando Research and is distributed under the MIT licence:

The MIT License (MIT)

Copyright (c) 2017 Zalando SE

Permission is hereby granted, free of charge, to any person obtaining a copy
of this software and associated documentation files (the "Software"), to deal
in the Software without restriction, including without limitation the rights
to use, copy, modify, merge, publish, distribute, sublicense, and/or sell
copies of the Software, and to permit persons to whom the Software is
furnished to do so, subject to the following conditions:

The above copyright notice and this permission notice shall be included in all
copies or substantial portions of the Software.

THE SOFTWARE IS PROVIDED "AS IS", WITHOUT WARRANTY OF ANY KIND, EXPRESS OR
IMPLIED, INCLUDING BUT NOT LIMITED TO THE WARRANTIES OF MERCHANTABILITY,
FITNESS FOR A PARTICULAR PURPOSE AND NONINFRINGEMENT. IN NO EVENT SHALL THE
AUTHORS OR COPYRIGHT HOLDERS BE LIABLE FOR ANY CLAIM, DAMAGES OR OTHER
LIABILITY, WHETHER IN AN ACTION OF CONTRACT, TORT OR OTHERWISE, ARISING FROM,
OUT OF OR IN CONNECTION WITH THE SOFTWARE OR THE USE OR OTHER DEALINGS IN THE
SOFTWARE.
"""


def choose(labels: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    """Sorted indices of `per_class` random items of each class, classes drawn in label order."""
    picks = [rng.choice(np.flatnonzero(labels == c), per_class, replace=False) for c in range(10)]
    return np.sort(np.concatenate(picks))


def main() -> None:
    """Select the subset, write the four IDX .gz files, NOTICE and provenance.json."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--source", type=Path, default=ROOT / ".." / "shared" / "data" / "fashion_mnist",
                        help="folder with the four official Fashion-MNIST IDX files")
    args = parser.parse_args()
    full = load_idx_dataset(SOURCES["fashion_mnist"], args.source, download=False)
    rng = np.random.default_rng(SEED)
    chosen = {"train": choose(full.y_train, PER_CLASS["train"], rng),
              "test": choose(full.y_test, PER_CLASS["test"], rng)}
    arrays = (full.x_train[chosen["train"], ..., 0], full.y_train[chosen["train"]].astype(np.uint8),
              full.x_test[chosen["test"], ..., 0], full.y_test[chosen["test"]].astype(np.uint8))
    OUT.mkdir(parents=True, exist_ok=True)
    md5 = {}
    for name, array in zip(FILES, arrays):
        content = encode_idx(array)
        (OUT / f"{name}.gz").write_bytes(gzip.compress(content, compresslevel=9, mtime=0))
        md5[f"{name}.gz"] = f"md5:{hashlib.md5(content).hexdigest()}"
    (OUT / "NOTICE").write_text(NOTICE)
    provenance = {
        "dataset": "Fashion-MNIST (Zalando Research, MIT licence)",
        "build_command": " ".join(["python", "scripts/build_embedded.py", *sys.argv[1:]]),
        "selection": "per class, numpy default_rng(seed).choice without replacement; train classes 0..9 then "
                     "test classes 0..9 from one generator; indices sorted (original order kept)",
        "seed": SEED,
        "per_class": PER_CLASS,
        "source_md5": full.sources,
        "md5": md5,
        "source_indices": {split: indices.tolist() for split, indices in chosen.items()},
    }
    (OUT / "provenance.json").write_text(json.dumps(provenance) + "\n")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
