"""The audit trail: every build/verify appends a chained entry; edits, removals and reordering break the chain."""

import json

import pytest

from poisonlab.defences import audit
from poisonlab.errors import PoisonlabError



def three_entries(log):
    for action, root in (("build", "aa"), ("verify", "aa"), ("verify", "bb")):
        audit.append(log, action, "digits", root * 32, {"labels": 0})
    return log.read_bytes().splitlines()


def test_chain_links_every_entry(tmp_path):
    lines = three_entries(tmp_path / "log.jsonl")
    entries, broken, _ = audit.check(lines)
    assert broken is None and [e["seq"] for e in entries] == [1, 2, 3]
    assert entries[0]["prev"] == audit.GENESIS
    assert all(e["prev"] == before["digest"] for before, e in zip(entries, entries[1:]))
    assert all(audit.entry_digest(e) == e["digest"] for e in entries)
    assert {"time", "user", "action", "dataset", "root", "changes"} <= entries[0].keys()


def test_edit_removal_and_reordering_are_found(tmp_path):
    lines = three_entries(tmp_path / "log.jsonl")
    edited = json.loads(lines[1])
    edited["changes"] = {"labels": 5}
    assert audit.check([lines[0], json.dumps(edited).encode(), lines[2]])[1] == 2
    assert audit.check([lines[0], lines[2]])[1] == 2
    assert audit.check([lines[1], lines[0], lines[2]])[1] == 1
    assert audit.check([lines[0], lines[1], b"{not json"])[1] == 3


def test_damaged_end_is_not_extended(tmp_path):
    log = tmp_path / "log.jsonl"
    three_entries(log)
    with open(log, "ab") as fh:
        fh.write(b'{"seq": 4, "trunc')
    with pytest.raises(PoisonlabError, match="ends in a damaged entry"):
        audit.append(log, "verify", "digits", "cc" * 32, {})


def test_build_and_verify_are_logged_and_log_check_proves_the_chain(tmp_path, cli):
    path = tmp_path / "digits.manifest.json"
    assert cli.code("manifest", "build", "--dataset", "digits", "--out", path) == 0
    assert cli.code("manifest", "verify", path) == 0
    assert cli.code("manifest", "verify", path, "--dataset-size", 1400) == 0  # a subset, not 37 removals
    log = audit.default_log(path)
    entries, broken, _ = audit.check(log.read_bytes().splitlines())
    assert broken is None and [e["action"] for e in entries] == ["build", "verify", "verify"]
    assert entries[2]["changes"]["removed"] == 0 and entries[2]["changes"]["outside"] == 37
    assert entries[2]["root"] != entries[0]["root"]
    assert cli.code("manifest", "log", path, "--check") == 0
    assert "chain intact: 3 entries" in cli.out
    lines = log.read_bytes().splitlines()
    log.write_bytes(b"\n".join([lines[0], lines[2]]) + b"\n")
    assert cli.code("manifest", "log", "--log", log, "--check") == 1
    assert "BROKEN: entry 2 of 2" in cli.out
    cli.fails("no audit log given", "manifest", "log", "--check")


def test_an_older_manifest_put_back_with_its_older_data_fails(tmp_path, cli):
    """Data v1 and its manifest, then v2 rebuilt (logged): restoring v1 and its manifest no longer verifies."""
    import shutil

    import numpy as np
    from PIL import Image

    for split in ("train", "test"):
        for name in ("a", "b"):
            (tmp_path / "set" / split / name).mkdir(parents=True)
            for n in range(2):
                Image.fromarray(np.full((4, 4), 30 * n + 100 * (name == "b"), np.uint8)).save(
                    tmp_path / "set" / split / name / f"{n}.png")
    spec, manifest = f"imagefolder:{tmp_path / 'set'}", tmp_path / "set.manifest.json"
    log = ("--log", tmp_path / "audit.jsonl")
    assert cli.code("manifest", "build", "--dataset", spec, "--out", manifest, *log) == 0
    shutil.copytree(tmp_path / "set", tmp_path / "v1")
    shutil.copy(manifest, tmp_path / "v1.manifest.json")
    Image.fromarray(np.full((4, 4), 7, np.uint8)).save(tmp_path / "set" / "train" / "a" / "0.png")  # v2
    assert cli.code("manifest", "build", "--dataset", spec, "--out", manifest, *log) == 0
    assert cli.code("manifest", "verify", manifest, *log) == 0
    shutil.rmtree(tmp_path / "set")
    shutil.copytree(tmp_path / "v1", tmp_path / "set")
    shutil.copy(tmp_path / "v1.manifest.json", manifest)  # the old pair put back: items match, the log does not
    assert cli.code("manifest", "verify", manifest, *log) == 1
    assert "AUDIT LOG: the audit log's latest build of" in cli.out and "an older manifest put back?" in cli.out
    assert cli.code("manifest", "verify", manifest, *log, "--require-signature") == 1
    assert "the manifest is unsigned and a signature is required" in " ".join(cli.out.split())
    cli.fails("--log and --out are both", "manifest", "build", "--dataset", spec, "--out", manifest, "--log", manifest)
