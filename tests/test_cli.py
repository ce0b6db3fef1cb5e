"""The command line: bad input is one line and exit code 2; train + analyse end to end."""

import gzip
import shutil

import pytest

from poisonlab.cli import main


def call(capsys, *args) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
        raise SystemExit(0)
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def one_line_error(capsys, *args) -> str:
    code, _, err = call(capsys, *args)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error:"), err
    return lines[0]


def test_unknown_dataset(capsys, tmp_path):
    assert "unknown dataset 'mnsit'" in one_line_error(capsys, "train", "--dataset", "mnsit", "--out", str(tmp_path))


@pytest.mark.parametrize("percents, message", [("0,150", "outside 0..100"), ("10,abc", "'abc' is not a number"), ("-5", "outside 0..100")])
def test_bad_percents(capsys, tmp_path, percents, message):
    assert message in one_line_error(capsys, "train", "--dataset", "digits", "--percents", percents, "--out", str(tmp_path))


def test_negative_size_and_unknown_kind_and_model(capsys, tmp_path):
    assert "negative" in one_line_error(capsys, "train", "--dataset", "digits", "--dataset-size", "-5", "--out", str(tmp_path))
    assert "unknown poisoning kind" in one_line_error(capsys, "train", "--kinds", "random,evil", "--out", str(tmp_path))
    assert "unknown model" in one_line_error(capsys, "train", "--model", "gpt", "--out", str(tmp_path))


def test_size_larger_than_dataset(capsys, tmp_path):
    line = one_line_error(capsys, "train", "--dataset", "digits", "--dataset_size", "99999", "--percents", "0", "--out", str(tmp_path))
    assert "99999" in line


def test_unwritable_output_folder(capsys, tmp_path):
    (tmp_path / "file").write_text("x")
    assert "cannot write to output folder" in one_line_error(capsys, "train", "--dataset", "digits", "--out", str(tmp_path / "file" / "runs"))


def test_missing_data_files_say_what_to_place_where(capsys, tmp_path):
    line = one_line_error(capsys, "train", "--dataset", "mnist", "--data-dir", str(tmp_path), "--no-download", "--percents", "0",
                          "--out", str(tmp_path / "runs"))
    assert "train-images-idx3-ubyte.gz" in line and str(tmp_path / "mnist") in line


def mnist_copy(shared_data, tmp_path):
    folder = tmp_path / "data" / "mnist"
    shutil.copytree(shared_data / "mnist", folder)
    return folder


def test_checksum_mismatch_and_truncated_file(capsys, tmp_path, shared_data):
    folder = mnist_copy(shared_data, tmp_path)
    labels = bytearray(gzip.decompress((folder / "t10k-labels-idx1-ubyte.gz").read_bytes()))
    labels[100] = (labels[100] + 1) % 10
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(bytes(labels)))
    args = ("train", "--dataset", "mnist", "--data-dir", str(tmp_path / "data"), "--no-download", "--percents", "0", "--out", str(tmp_path / "runs"))
    assert "checksum mismatch" in one_line_error(capsys, *args)
    shutil.copy(shared_data / "mnist" / "t10k-labels-idx1-ubyte.gz", folder)
    data = (folder / "train-images-idx3-ubyte.gz").read_bytes()
    (folder / "train-images-idx3-ubyte.gz").write_bytes(data[: len(data) // 2])
    assert "truncated or corrupted" in one_line_error(capsys, *args)


def test_bad_input_does_not_touch_finished_runs(capsys, tmp_path):
    code, _, err = call(capsys, "train", "--dataset", "digits", "--percents", "0", "--epochs", "1", "--out", str(tmp_path))
    assert code == 0, err
    before = (tmp_path / "results.csv").read_text()
    one_line_error(capsys, "train", "--dataset", "digits", "--percents", "0,500", "--out", str(tmp_path))
    assert (tmp_path / "results.csv").read_text() == before


def test_train_then_analyse_draws_both_kinds(capsys, tmp_path):
    code, _, err = call(capsys, "train", "--dataset", "digits", "--kinds", "random,biased", "--percents", "0,50,100",
                        "--epochs", "2", "--out", str(tmp_path))
    assert code == 0, err
    code, out, err = call(capsys, "analyse", "--all", "--out", str(tmp_path))
    assert code == 0, err
    png = tmp_path / "plots" / "accuracy_vs_poison.png"
    assert str(png) in out and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = (tmp_path / "plots" / "accuracy_vs_poison.csv").read_text().splitlines()
    assert len(rows) == 1 + 6
    assert "no biased runs for mnist" in one_line_error(capsys, "analyse", "--biased", "--datasets", "mnist", "--out", str(tmp_path))


def test_demo_runs_on_the_embedded_dataset_without_data_dir(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("POISONLAB_DATA", str(tmp_path / "empty-cache"))  # proves no download or cache is needed
    code, out, err = call(capsys, "demo", "--percents", "0,100", "--epochs", "1", "--out", str(tmp_path))
    assert code == 0, err
    assert "4 runs trained" in err and (tmp_path / "plots" / "accuracy_vs_poison.png").exists()
    assert str(tmp_path / "plots" / "accuracy_vs_poison.svg") in out
    assert str(tmp_path / "report.html") in out and "embedded" in (tmp_path / "report.html").read_text()
