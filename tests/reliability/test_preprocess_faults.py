"""Preprocess: inputs stay inside --data-dir, and every input line is written or rejected."""

import os
import signal
import subprocess
import sys
import time

import pytest

from bertline import errors, resources, schema
from tests.reliability.conftest import bertline, bertline_here, last_line

VOCAB = os.path.join(resources.minilm_dir(), "vocab.txt")


@pytest.mark.parametrize("name", ["../../../../etc/passwd", "/etc/passwd", "sub/../../x.tsv",
                                  "gs://other-bucket/train.tsv", "~/train.tsv"])
def test_a_task_file_cannot_name_a_file_outside_the_data_dir(tmp_path, name):
  data = tmp_path / "data"
  data.mkdir()
  task = tmp_path / "task.yaml"
  task.write_text("name: t\nlabels: [a, b]\nsplits:\n"
                  f"  train: {{file: '{name}', text_a: 0, label: 1}}\n")
  out = tmp_path / "out"
  result = bertline("preprocess", "--task-config", str(task), "--data-dir", str(data),
                    "--vocab-file", VOCAB, "--output-dir", str(out))
  assert result.returncode == errors.BAD_INPUT, result.stderr
  assert f"split file {name!r} must be a path inside --data-dir" in last_line(result)
  assert not out.exists() and "Traceback" not in result.stderr


TASK = ("name: t\nlabels: [neg, pos]\nsplits:\n"
        "  train: {file: train.tsv, header: true, text_a: 1, label: 0}\n")


def _corpus(directory, rows, header=b"label\ttext\n", newline=b"\n"):
  directory.mkdir(parents=True, exist_ok=True)
  (directory / "task.yaml").write_text(TASK)
  (directory / "train.tsv").write_bytes(header + b"".join(r + newline for r in rows))
  return directory


def _two_labels(text, n, first=b"pos"):
  """n rows of `text % i`, labelled first/other by turns: a train split needs two labels."""
  other = b"neg" if first == b"pos" else b"pos"
  return [b"%s\t%s" % ((first, other)[i % 2], text % i) for i in range(n)]


def _preprocess(data, out, *extra):
  return ["preprocess", "--task-config", str(data / "task.yaml"), "--data-dir", str(data),
          "--vocab-file", VOCAB, "--max-seq-length", "16", "--output-dir", str(out),
          "--splits", "train", *extra]


def _read_all(out):
  from tests.records import read_split
  return read_split(str(out), "train")


def test_two_concurrent_writers_never_mix_and_the_second_is_refused(tmp_path):
  a = _corpus(tmp_path / "a", _two_labels(b"good movie %d", 300, first=b"pos"))
  b = _corpus(tmp_path / "b", _two_labels(b"bad film %d", 200, first=b"neg"))
  out = tmp_path / "out"
  env = dict(os.environ, NO_GCE_CHECK="True")
  procs = [subprocess.Popen([sys.executable, "-m", "bertline", *_preprocess(d, out)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
           for d in (a, b)]
  results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
  assert sorted(code for code, _ in results) == [0, errors.BAD_INPUT], results
  (refused,) = [err for code, err in results if code]
  assert ("another `bertline preprocess` is writing to" in refused
          or "holds a finished run" in refused)
  from bertline import schema
  metadata = schema.read_metadata(str(out))
  records = _read_all(out)
  assert len(records) == metadata.splits["train"].num_examples in (300, 200)  # one dataset


def test_overwrite_with_fewer_shards_reads_exactly_the_new_run(tmp_path):
  from bertline import schema
  first = _corpus(tmp_path / "first", _two_labels(b"good %d", 120, first=b"pos"))
  out = tmp_path / "out"
  assert bertline(*_preprocess(first, out, "--num-shards", "4")).returncode == 0
  second = _corpus(tmp_path / "second", _two_labels(b"bad %d", 60, first=b"neg"))
  result = bertline(*_preprocess(second, out, "--num-shards", "1", "--overwrite"))
  assert result.returncode == 0, result.stderr
  metadata = schema.read_metadata(str(out))
  assert metadata.splits["train"].num_examples == 60 == len(_read_all(out))
  assert len(metadata.split_files(str(out), "train")) == 1
  runs = [n for n in os.listdir(out) if n.startswith(schema.RUN_DIR_PREFIX)]
  assert len(runs) == 1  # the replaced run is gone, after the new one was published


def test_cr_only_line_endings_are_refused_naming_the_file(tmp_path):
  data = _corpus(tmp_path / "mac", [b"pos\tgood", b"neg\tbad"], header=b"label\ttext\r",
                 newline=b"\r")
  result = bertline(*_preprocess(data, tmp_path / "out"))
  assert result.returncode == errors.BAD_INPUT, result.stderr
  line = last_line(result)
  assert f"{data / 'train.tsv'} uses CR-only line endings" in line and "tr '\\r' '\\n'" in line
  assert not (tmp_path / "out" / "metadata.json").exists()


def test_an_input_that_yields_no_example_is_an_error_and_publishes_nothing(tmp_path):
  data = _corpus(tmp_path / "d", [b"maybe\tgood", b"perhaps\tbad"])  # labels not in the task
  out = tmp_path / "out"
  result = bertline(*_preprocess(data, out))
  assert result.returncode == errors.BAD_INPUT, result.stderr
  assert "not one example was written from its rows (2 rejected" in last_line(result)
  assert not (out / "metadata.json").exists()
  assert [n for n in os.listdir(out) if not n.startswith(".")] == []  # the failed run is gone


def test_empty_texts_are_counted_and_undecodable_labels_rejected(tmp_path):
  data = _corpus(tmp_path / "d", [b"pos\tgood", b"neg\t   ", b"pos\t", b"pos\xff\tnice",
                                  b"neg\tbad"])
  out = tmp_path / "out"
  result = bertline(*_preprocess(data, out))
  assert result.returncode == 0, result.stderr
  info = schema.read_metadata(str(out)).splits["train"]
  assert (info.num_examples, info.num_empty_text, info.num_rejected) == (4, 2, 1)
  assert "2 examples have an empty or whitespace-only text" in result.stderr
  with open(out / info.rejected_file, "rb") as f:
    rejected = f.read().splitlines()
  assert len(rejected) == 2 and b"is not valid UTF-8" in rejected[1] and b"\t5\t" in rejected[1]


@pytest.mark.parametrize("header", [b"", b"label\ttext\n"])
def test_a_utf8_byte_order_mark_is_not_read_as_text_nor_as_a_label(tmp_path, header):
  """Excel and Notepad start a "UTF-8" file with a BOM: utf-8-sig's rule, as users' readers do."""
  data = tmp_path / "d"
  data.mkdir()
  (data / "task.yaml").write_text(  # labels inferred: a BOM would make a third class "\ufeff1"
      "name: t\nsplits:\n"
      f"  train: {{file: train.tsv, header: {'true' if header else 'false'}, text_a: 1, label: 0}}\n")
  rows = [b"1\tgood film", b"0\tdull", b"1\tgreat fun", b"0\tawful"]
  (data / "train.tsv").write_bytes(b"\xef\xbb\xbf" + header + b"\n".join(rows) + b"\n")
  out = tmp_path / "out"
  result = bertline_here(*_preprocess(data, out))
  assert result.returncode == 0, result.stderr
  metadata = schema.read_metadata(str(out))
  assert metadata.labels == ["0", "1"] and metadata.splits["train"].num_rejected == 0
  _, first = _read_all(out)["train-1" if header else "train-0"]
  assert first["label_ids"][0] == metadata.labels.index("1")
  assert int(first["input_mask"].sum()) == 4  # [CLS] good film [SEP]


def test_a_model_directory_given_as_the_vocab_file_names_the_vocab_inside(tmp_path, tweets_data):
  model = resources.minilm_dir()
  data = _corpus(tmp_path / "d", [b"pos\tgood", b"neg\tbad"])
  for args in (_preprocess(data, tmp_path / "out")[:5] + ["--vocab-file", model, "--output-dir",
                                                          str(tmp_path / "out")],
               ["train", "--data-dir", tweets_data["data"], "--model-dir", str(tmp_path / "m"),
                "--init-checkpoint", model, "--vocab-file", model]):
    result = bertline_here(*args)
    assert result.returncode == errors.BAD_INPUT, result.stderr
    assert last_line(result).endswith(f"vocab file {model} is a directory: give the vocab.txt "
                                      f"file ({os.path.join(model, 'vocab.txt')})")
    assert "Traceback" not in result.stderr
  assert not (tmp_path / "out" / "metadata.json").exists() and not (tmp_path / "m").exists()


def test_a_fifo_as_a_split_file_is_refused_at_once_not_waited_on(tmp_path):
  data = _corpus(tmp_path / "d", [b"pos\tgood"])
  os.remove(data / "train.tsv")
  os.mkfifo(data / "train.tsv")  # nobody writes it: reading it would block for ever
  result = bertline_here(*_preprocess(data, tmp_path / "out"))
  assert result.returncode == errors.BAD_INPUT, result.stderr
  assert f"train file {data / 'train.tsv'} is a pipe or FIFO, not a regular file" in \
      last_line(result)
  assert not (tmp_path / "out" / "metadata.json").exists()


def test_a_train_split_of_one_label_is_refused_not_learned_to_accuracy_one(tmp_path):
  data = _corpus(tmp_path / "d", [b"pos\tgood %d" % i for i in range(20)])
  result = bertline_here(*_preprocess(data, tmp_path / "out"))
  assert result.returncode == errors.BAD_INPUT, result.stderr
  assert last_line(result).endswith(
      f"{data / 'train.tsv'}: every one of its 20 examples has label 'pos': a classifier learns "
      "nothing from one label (it would score 1.0 on data like it). Check the task's label "
      "column, or add rows of the other labels.")
  assert not (tmp_path / "out" / "metadata.json").exists()


def test_a_full_disk_inside_the_beam_workers_is_one_line_and_exit_5(tmp_path, small_fs):
  # 1 MiB fills long before 12,000 examples (three rows of 16 ids and a guid each) are written.
  data = _corpus(tmp_path / "d", _two_labels(b"a rather long review of a film " * 6 + b"%d",
                                             12000))
  result = bertline(*_preprocess(data, small_fs, "--num-shards", "2"))
  assert result.returncode == errors.STORAGE, result.stderr[-3000:]
  assert last_line(result).startswith("bertline preprocess: error: no space left on the device")
  assert "free space or fix the permissions, then re-run the same command" in last_line(result)
  assert "Traceback" not in result.stderr, result.stderr[-3000:]
  assert not (small_fs / "metadata.json").exists()


def test_sigterm_mid_preprocess_is_exit_143_with_a_line_and_leaves_nothing(tmp_path):
  data = _corpus(tmp_path / "d", _two_labels(b"a review of a film, " * 8 + b"%d", 60000))
  out = tmp_path / "out"
  proc = subprocess.Popen([sys.executable, "-m", "bertline", *_preprocess(data, out)],
                          env=dict(os.environ, NO_GCE_CHECK="True"), stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
  deadline = time.time() + 120
  while not (out.exists() and any(n.startswith("run-") for n in os.listdir(out))):
    assert proc.poll() is None and time.time() < deadline, proc.stderr.read()
    time.sleep(0.05)
  time.sleep(1.0)  # the workers are writing shards
  proc.send_signal(signal.SIGTERM)
  _, err = proc.communicate(timeout=120)
  assert proc.returncode == errors.INTERRUPTED, err[-3000:]
  assert err.strip().splitlines()[-1] == (
      "bertline preprocess: interrupted by SIGTERM: nothing it was writing was published (a "
      "partial output is removed); re-run the same command.")
  assert [n for n in os.listdir(out) if not n.startswith(".")] == []  # no run-*/, no metadata
