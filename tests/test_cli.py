"""The command line: bad input is one line and exit code 2; train + analyse end to end."""

import re
import gzip
import shutil

import numpy as np
import pytest

from poisonlab import store


def one_line_error(cli, *args) -> str:
    code, _, err = cli(*args)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error:"), err
    return lines[0]


def test_unknown_dataset(cli, tmp_path):
    assert "unknown dataset 'mnsit'" in one_line_error(cli, "train", "--dataset", "mnsit", "--out", str(tmp_path))


@pytest.mark.parametrize("percents, message", [("0,150", "outside 0..100"), ("10,abc", "'abc' is not a number"), ("-5", "outside 0..100")])
def test_bad_percents(cli, tmp_path, percents, message):
    assert message in one_line_error(cli, "train", "--dataset", "digits", "--percents", percents, "--out", str(tmp_path))


def test_negative_size_and_unknown_kind_and_model(cli, tmp_path):
    assert "negative" in one_line_error(cli, "train", "--dataset", "digits", "--dataset-size", "-5", "--out", str(tmp_path))
    assert "unknown poisoning kind" in one_line_error(cli, "train", "--kinds", "random,evil", "--out", str(tmp_path))
    assert "unknown model" in one_line_error(cli, "train", "--model", "gpt", "--out", str(tmp_path))


def test_size_larger_than_dataset(cli, tmp_path):
    line = one_line_error(cli, "train", "--dataset", "digits", "--dataset_size", "99999", "--percents", "0", "--out", str(tmp_path))
    assert "99999" in line


def test_unwritable_output_folder(cli, tmp_path):
    (tmp_path / "file").write_text("x")
    assert "cannot write to output folder" in one_line_error(cli, "train", "--dataset", "digits", "--out", str(tmp_path / "file" / "runs"))


def test_missing_data_files_say_what_to_place_where(cli, tmp_path):
    line = one_line_error(cli, "train", "--dataset", "mnist", "--data-dir", str(tmp_path), "--no-download", "--percents", "0",
                          "--out", str(tmp_path / "runs"))
    assert "train-images-idx3-ubyte.gz" in line and str(tmp_path / "mnist") in line


def mnist_copy(shared_data, tmp_path):
    folder = tmp_path / "data" / "mnist"
    shutil.copytree(shared_data / "mnist", folder)
    return folder


def test_checksum_mismatch_and_truncated_file(cli, tmp_path, shared_data):
    folder = mnist_copy(shared_data, tmp_path)
    labels = bytearray(gzip.decompress((folder / "t10k-labels-idx1-ubyte.gz").read_bytes()))
    labels[100] = (labels[100] + 1) % 10
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(bytes(labels)))
    args = ("train", "--dataset", "mnist", "--data-dir", str(tmp_path / "data"), "--no-download", "--percents", "0", "--out", str(tmp_path / "runs"))
    assert "checksum mismatch" in one_line_error(cli, *args)
    shutil.copy(shared_data / "mnist" / "t10k-labels-idx1-ubyte.gz", folder)
    data = (folder / "train-images-idx3-ubyte.gz").read_bytes()
    (folder / "train-images-idx3-ubyte.gz").write_bytes(data[: len(data) // 2])
    assert "truncated or corrupted" in one_line_error(cli, *args)


def test_bad_precision(cli, tmp_path):
    assert "unknown precision 'fp16'; choose one of auto, bf16, fp32" in one_line_error(
        cli, "train", "--dataset", "digits", "--precision", "fp16", "--out", str(tmp_path))


def test_two_jobs_train_every_run_and_record_the_precision(cli, tmp_path):
    code, _, err = cli("train", "--dataset", "digits", "--percents", "0,40", "--epochs", "1", "--jobs", "2",
                       "--precision", "fp32", "--out", str(tmp_path))
    assert code == 0, err
    assert "2 runs trained, 0 already done" in err and (tmp_path / "results.csv").read_text().count("\n") == 3
    assert {store.read_run(p.parent)["training"]["precision"] for p in tmp_path.glob("models/*/*/seed0/run.json")} == {"fp32"}


def test_bad_input_does_not_touch_finished_runs(cli, tmp_path):
    code, _, err = cli("train", "--dataset", "digits", "--percents", "0", "--epochs", "1", "--out", str(tmp_path))
    assert code == 0, err
    before = (tmp_path / "results.csv").read_text()
    one_line_error(cli, "train", "--dataset", "digits", "--percents", "0,500", "--out", str(tmp_path))
    assert (tmp_path / "results.csv").read_text() == before


def test_train_then_analyse_draws_both_kinds(cli, tmp_path):
    code, _, err = cli("train", "--dataset", "digits", "--kinds", "random,biased", "--percents", "0,50,100",
                        "--epochs", "2", "--out", str(tmp_path))
    assert code == 0, err
    code, out, err = cli("analyse", "--all", "--out", str(tmp_path))
    assert code == 0, err
    png = tmp_path / "plots" / "accuracy_vs_poison.png"
    assert str(png) in out and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = (tmp_path / "plots" / "accuracy_vs_poison.csv").read_text().splitlines()
    assert len(rows) == 1 + 6
    assert "no biased runs for mnist" in one_line_error(cli, "analyse", "--biased", "--datasets", "mnist", "--out", str(tmp_path))


def test_demo_runs_on_the_embedded_dataset_without_data_dir(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("POISONLAB_DATA", str(tmp_path / "empty-cache"))  # proves no download or cache is needed
    code, out, err = cli("demo", "--percents", "0,100", "--epochs", "1", "--out", str(tmp_path))
    assert code == 0, err
    assert "4 runs trained" in err and (tmp_path / "plots" / "accuracy_vs_poison.png").exists()
    assert str(tmp_path / "plots" / "accuracy_vs_poison.svg") in out
    assert str(tmp_path / "report.html") in out and "embedded" in (tmp_path / "report.html").read_text()


@pytest.mark.parametrize("args, message", [
    (["--labels", "cifar10n:best"], "unknown cifar10n label set 'best'; choose one of aggre, worse, random1, random2, random3"),
    (["--labels", "cifar10n:aggre", "--dataset", "mnist"], "CIFAR-10N labels belong to CIFAR-10, not mnist; use dataset cifar10"),
    (["--labels", "cifar10n:aggre", "--kinds", "random", "--biased"], "human labels replace poisoning; leave out --kinds, --biased"),
    (["--labels", "cifar10n:aggre", "--percents", "0,10"], "human labels replace poisoning; leave out --percents"),
    (["--labels", "cifar10n:aggre", "--cifar-n", "missing.npz"], "CIFAR-10N labels file missing.npz not found; give the path of the official cifar10n_labels.npz"),
    (["--cifar-n", "labels.npz"], "--cifar-n is only read with --labels; add --labels cifar10n:KEY or leave out --cifar-n"),
])
def test_bad_human_label_requests(cli, tmp_path, args, message):
    line = one_line_error(cli, "train", "--dataset", "cifar10", *args, "--out", str(tmp_path))
    assert message in line and not (tmp_path / "models").exists()


def test_default_labels_file_is_looked_up_in_the_data_folder(cli, tmp_path):
    line = one_line_error(cli, "train", "--dataset", "cifar10", "--labels", "cifar10n:worse", "--data-dir", str(tmp_path),
                          "--out", str(tmp_path / "runs"))
    assert f"{tmp_path / 'cifar_n' / 'cifar10n_labels.npz'} not found" in line


@pytest.mark.slow
def test_training_on_cifar10n_human_labels_records_the_measured_noise(cli, shared_data, tmp_path):
    labels_file = shared_data / "cifar_n" / "cifar10n_labels.npz"
    args = ["train", "--dataset", "cifar10", "--dataset-size", "500", "--labels", "cifar10n:aggre,worse", "--epochs", "1",
            "--seeds", "3", "--data-dir", str(shared_data), "--no-download", "--out", str(tmp_path / "runs")]
    code, _, err = cli(*args)
    assert code == 0, err
    with np.load(labels_file, allow_pickle=False) as npz:
        clean, human = npz["clean_label"][:500], {k: npz[f"{k}_label"][:500] for k in ("aggre", "worse")}
    rows = {r["kind"]: r for r in store.results(tmp_path / "runs")}
    assert sorted(rows) == ["cifar10n:aggre", "cifar10n:worse"]
    for key, noisy in human.items():
        row = rows[f"cifar10n:{key}"]
        assert row["run_dir"] == f"models/cifar10_500_cifar10n-{key}/seed3" and row["seed"] == 3
        assert row["percent"] == pytest.approx(100 * np.mean(noisy != clean)) and row["n_poisoned"] == (noisy != clean).sum()
        run = store.read_run(tmp_path / "runs" / row["run_dir"])
        assert np.array_equal(store.poison_mask(run), noisy != clean)
        assert run["poison"]["new_labels"] == noisy[noisy != clean].tolist()
        assert run["labels"]["file"] == str(labels_file.resolve()) and run["labels"]["sha256"].startswith("sha256:")
        assert run["labels"]["noise_rate"] == pytest.approx(row["percent"] / 100)
    assert rows["cifar10n:aggre"]["percent"] < 15 < 35 < rows["cifar10n:worse"]["percent"]
    code, _, err = cli(*args)
    assert code == 0 and "resuming: 2 of 2 runs already finished" in err and "0 runs trained" in err
    with np.load(labels_file, allow_pickle=False) as npz:
        np.savez(tmp_path / "shifted.npz", **{k: np.roll(npz[k], 1) for k in npz.files})
    line = one_line_error(cli, *args[:-2], "--out", str(tmp_path / "other"), "--cifar-n", str(tmp_path / "shifted.npz"))
    assert "differ from the loaded CIFAR-10 training labels" in line


@pytest.mark.parametrize("command", [["train"], ["detect"], ["flip"], ["analyse"], ["report"], ["manifest", "verify"],
                                     ["monitor", "counts"], ["validate"], []])
def test_help_is_clean(cli, command):
    code, out, _ = cli(*command, "--help")
    assert code == 0 and "Usage: poisonlab" in out
    assert "<bool>" not in out and not re.search(r"\w \.\s", out), out


def test_version(cli):
    code, out, _ = cli("--version")
    assert code == 0 and re.fullmatch(r"poisonlab \d+\.\d+\.\d+\n", out)
