"""Integrity manifests: per-item SHA-256 of pixels and label, a Merkle root over all items, and the diff against one."""

from __future__ import annotations

import hashlib
import json
import struct
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from poisonlab.datasets import Dataset
from poisonlab.errors import PoisonlabError
from poisonlab.files import MAX_KEY_BYTES, MAX_MANIFEST_BYTES, read_json, read_limited
from poisonlab.store import atomic_write

FORMAT = "poisonlab-manifest/1"
SPLITS = ("train", "test")
CHANGE_KINDS = ("labels", "pixels", "added", "removed")
LEAF, NODE = b"\x00", b"\x01"  # domain separation: a leaf can never pass for an inner node
_LEAF_HEAD = struct.Struct("<cBQq")  # prefix, split number, item index, label


def hash_split(x: np.ndarray, y: np.ndarray, split: str) -> tuple[list[bytes], list[bytes]]:
    """SHA-256 of each item's pixel bytes, and its Merkle leaf (split, index, label and pixel digest)."""
    pixels = np.ascontiguousarray(x)
    size = pixels[0].nbytes if len(pixels) else 0
    buf = memoryview(pixels.reshape(-1)).cast("B")
    digests = [hashlib.sha256(buf[i * size:(i + 1) * size]).digest() for i in range(len(pixels))]
    return digests, leaves_of(digests, y.tolist(), split)


def leaves_of(digests: list[bytes], labels: list[int], split: str) -> list[bytes]:
    """Merkle leaves: SHA-256 of prefix, split, index, label and pixel digest of each item."""
    split_no = SPLITS.index(split)
    return [hashlib.sha256(_LEAF_HEAD.pack(LEAF, split_no, i, label) + d).digest()
            for i, (label, d) in enumerate(zip(labels, digests))]


def merkle_root(leaves: list[bytes]) -> bytes:
    """Root of the binary SHA-256 tree over `leaves` (last node doubled on odd levels; empty: hash of nothing)."""
    level = leaves or [hashlib.sha256(b"").digest()]
    while len(level) > 1:
        if len(level) % 2:
            level = [*level, level[-1]]
        level = [hashlib.sha256(NODE + level[i] + level[i + 1]).digest() for i in range(0, len(level), 2)]
    return level[0]


def dataset_items(data: Dataset) -> dict[str, dict]:
    """Per split: hex pixel digests, labels and leaves of every item of `data`."""
    items = {}
    for split in SPLITS:
        x, y = getattr(data, f"x_{split}"), getattr(data, f"y_{split}")
        digests, leaves = hash_split(x, y, split)
        items[split] = {"pixel_sha256": [d.hex() for d in digests], "labels": y.tolist(), "leaves": leaves}
    return items


def root_of(items: dict[str, dict]) -> str:
    """Hex Merkle root over the train leaves, then the test leaves."""
    return merkle_root([leaf for split in SPLITS for leaf in items[split]["leaves"]]).hex()


def build(data: Dataset, spec: str, dataset_size: int) -> dict:
    """The manifest of `data` (loaded from `spec` with `dataset_size`), unsigned."""
    items = dataset_items(data)
    return {
        "format": FORMAT,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "dataset": spec,
        "dataset_size": dataset_size,
        "name": data.name,
        "classes": data.classes,
        "shape": list(data.x_train.shape[1:]),
        "splits": {s: {"count": len(items[s]["labels"]),
                       "class_counts": np.bincount(items[s]["labels"], minlength=data.num_classes).tolist()}
                   for s in SPLITS},
        "root": root_of(items),
        "items": {s: {"pixel_sha256": items[s]["pixel_sha256"], "labels": items[s]["labels"]} for s in SPLITS},
    }


def write(path: Path, manifest: dict) -> None:
    """Atomically write `manifest` as compact JSON (about 70 bytes per item)."""
    atomic_write(path, json.dumps(manifest, separators=(",", ":"), allow_nan=False) + "\n")


def read(path: Path) -> dict:
    """A manifest file, or a one-line error naming the problem."""
    manifest = read_json(path, f"manifest {path}", MAX_MANIFEST_BYTES,
                         "build one with `poisonlab manifest build`, or restore it from a copy")
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise PoisonlabError(f"{path} is not a {FORMAT} manifest; build one with `poisonlab manifest build`")
    return manifest


def self_check(manifest: dict) -> list[str]:
    """Problems inside the manifest itself: stored items that do not give its root or class counts."""
    try:
        items = {}
        for split in SPLITS:
            stored, recorded = manifest["items"][split], manifest["splits"][split]
            digests, labels = [bytes.fromhex(h) for h in stored["pixel_sha256"]], stored["labels"]
            if len(digests) != len(labels) or any(len(d) != 32 for d in digests):
                return [f"{split} items are malformed"]
            items[split] = {"leaves": leaves_of(digests, labels, split)}
            counts = np.bincount(np.asarray(labels, np.int64), minlength=len(manifest["classes"])).tolist()
            if counts != recorded["class_counts"] or len(labels) != recorded["count"]:
                return [f"{split} class counts do not match the stored labels"]
    except (KeyError, TypeError, ValueError, struct.error):
        return ["items are missing or malformed"]
    return [] if root_of(items) == manifest["root"] else ["stored items do not hash to the recorded root"]


def diff(manifest: dict, data: Dataset, *, subset: bool = False) -> dict:
    """Root of `data` and every difference from the manifest: labels (old -> new), pixels, added, removed, header.

    With `subset`, `data`'s training items are the first items of the manifest's (a run on the first N): the
    manifest's later training items are not removals but outside the subset (`outside`, their count); each item of
    the subset is still compared with the manifest's stored one, whose digests the root commits to."""
    items = dataset_items(data)
    changes: dict[str, list] = {kind: [] for kind in CHANGE_KINDS}
    outside = 0
    for split in SPLITS:
        old, new = manifest["items"][split], items[split]
        old_labels, new_labels = np.asarray(old["labels"], np.int64), np.asarray(new["labels"], np.int64)
        n = min(len(old_labels), len(new_labels))
        for i in np.flatnonzero(old_labels[:n] != new_labels[:n]).tolist():
            changes["labels"].append({"split": split, "index": i, "old": int(old_labels[i]), "new": int(new_labels[i])})
        old_px, new_px = old["pixel_sha256"], new["pixel_sha256"]
        changes["pixels"] += [{"split": split, "index": i} for i in range(n) if old_px[i] != new_px[i]]
        changes["added"] += [{"split": split, "index": i, "label": int(new_labels[i])} for i in range(n, len(new_labels))]
        if subset and split == "train":
            outside = len(old_labels) - n
            continue
        changes["removed"] += [{"split": split, "index": i, "label": int(old_labels[i])} for i in range(n, len(old_labels))]
    header = []
    if list(data.x_train.shape[1:]) != manifest["shape"]:
        header.append(f"image shape {tuple(manifest['shape'])} -> {data.x_train.shape[1:]}")
    if data.classes != manifest["classes"]:
        header.append(f"class names {manifest['classes']} -> {data.classes}")
    return {"root": root_of(items), "changes": changes, "header": header, "outside": outside}


def matches(manifest: dict, result: dict, *, subset: bool = False) -> bool:
    """Whether a `diff` result shows the data unchanged: the manifest's root, or (a `subset`) no changed item."""
    if result["header"]:
        return False
    if subset:
        return not any(summary(result).values())
    return result["root"] == manifest["root"]


def summary(result: dict) -> dict[str, int]:
    """Number of changes of each kind."""
    return {kind: len(found) for kind, found in result["changes"].items()}


def new_key_pair() -> tuple[bytes, bytes]:
    """A fresh Ed25519 key pair as (private PKCS#8 PEM, public PEM)."""
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return private, key.public_key().public_bytes(serialization.Encoding.PEM,
                                                  serialization.PublicFormat.SubjectPublicKeyInfo)


def load_key(path: Path, private: bool) -> Ed25519PrivateKey | Ed25519PublicKey:
    """An Ed25519 private or public key from a PEM file, or a one-line error."""
    kind = "private" if private else "public"
    data = read_limited(path, f"{kind} key {path}", MAX_KEY_BYTES, "make a pair with `poisonlab manifest keygen`")
    try:
        key = (serialization.load_pem_private_key(data, password=None) if private
               else serialization.load_pem_public_key(data))
    except (ValueError, TypeError):
        raise PoisonlabError(f"{path} is not an unencrypted {kind} key in PEM format; "
                             "make a pair with `poisonlab manifest keygen`") from None
    if not isinstance(key, Ed25519PrivateKey if private else Ed25519PublicKey):
        raise PoisonlabError(f"{path} is not an Ed25519 {kind} key; make a pair with `poisonlab manifest keygen`")
    return key


def signed_bytes(manifest: dict) -> bytes:
    """What a signature covers: every field but the items (the root commits to them) and the signature itself."""
    head = {k: v for k, v in manifest.items() if k not in ("items", "signature")}
    return json.dumps(head, sort_keys=True, separators=(",", ":")).encode()


def sign(manifest: dict, key: Ed25519PrivateKey) -> dict:
    """`manifest` with an Ed25519 signature and the raw public key that checks it."""
    public = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    signature = {"algorithm": "ed25519", "public_key": public.hex(), "value": key.sign(signed_bytes(manifest)).hex()}
    return {**manifest, "signature": signature}


def check_signature(manifest: dict, key: Ed25519PublicKey | None) -> tuple[bool, str]:
    """(ok, status): checked with `key`, else with the embedded key, which proves integrity but not who signed."""
    signature = manifest.get("signature")
    if signature is None:
        return key is None, "unsigned" if key is None else "MISSING (a public key was given but the manifest is unsigned)"
    try:
        embedded = Ed25519PublicKey.from_public_bytes(bytes.fromhex(signature["public_key"]))
        (key or embedded).verify(bytes.fromhex(signature["value"]), signed_bytes(manifest))
    except (InvalidSignature, KeyError, TypeError, ValueError):
        return False, "BAD (forged, altered, or signed with another key)"
    return True, "valid (given public key)" if key else "valid (embedded key only: give the public key to prove the signer)"
