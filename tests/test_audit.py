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
    assert cli.code("manifest", "verify", path, "--dataset-size", 1400) == 1
    log = audit.default_log(path)
    entries, broken, _ = audit.check(log.read_bytes().splitlines())
    assert broken is None and [e["action"] for e in entries] == ["build", "verify", "verify"]
    assert entries[2]["changes"]["removed"] == 37 and entries[2]["root"] != entries[0]["root"]
    assert cli.code("manifest", "log", path, "--check") == 0
    assert "chain intact: 3 entries" in cli.out
    lines = log.read_bytes().splitlines()
    log.write_bytes(b"\n".join([lines[0], lines[2]]) + b"\n")
    assert cli.code("manifest", "log", "--log", log, "--check") == 1
    assert "BROKEN: entry 2 of 2" in cli.out
    cli.fails("no audit log given", "manifest", "log", "--check")
