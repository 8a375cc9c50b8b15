"""The Beam job end to end on small real data, checked against run_classifier."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from bertline import corpora, resources, schema
from bertline.preprocessing import beam_job
from tests.preprocessing import reference
from tests.preprocessing.test_processors import _glue_fixture
from tests.records import read_split

VOCAB = os.path.join(resources.minilm_dir(), "vocab.txt")


def _check_against_reference(out_dir, metadata, ref_examples, lower=True):
  rc = reference.reference_run_classifier()
  tok = reference.reference_tokenization().FullTokenizer(VOCAB, do_lower_case=lower)
  for split, examples in ref_examples.items():
    records = {guid: example for guid, (_, example) in read_split(out_dir, split).items()}
    assert sorted(records) == sorted(e.guid for e in examples), split
    assert metadata.splits[split].num_examples == len(examples)
    for e in examples:
      want = rc.convert_single_example(10, e, metadata.labels, metadata.max_seq_length, tok)
      got = records[e.guid]
      for name in schema.SEQUENCE_FEATURES:
        np.testing.assert_array_equal(got[name], want[name] if isinstance(want, dict)
                                      else getattr(want, name), err_msg=f"{split} {e.guid} {name}")
      assert got[schema.LABEL_IDS][0] == want.label_id
      assert got[schema.IS_REAL_EXAMPLE][0] == 1


def test_mrpc_pairs_match_run_classifier_with_gzip(tmp_path):
  data, out = str(tmp_path / "data"), str(tmp_path / "out")
  _glue_fixture("mrpc", data)
  ref = reference.reference_run_classifier().MrpcProcessor()
  # The reference crashes on the bad rows appended below; bertline keeps them aside.
  examples = {"train": ref.get_train_examples(data), "dev": ref.get_dev_examples(data),
              "test": ref.get_test_examples(data)}
  with open(os.path.join(data, "train.tsv"), "ab") as f:
    f.write(b"1\tonly three\tcolumns\r\n9\ta\tb\tunknown label\tx\r\n")
  metadata = beam_job.run(beam_job.config_from_args(["--task", "mrpc", "--data-dir", data, "--vocab-file", VOCAB,
                           "--max-seq-length", "24", "--output-dir", out, "--compression", "gzip",
                           "--num-shards", "2"]))
  assert metadata.has_text_b and metadata.compression == "gzip"
  assert len(metadata.split_files(out, "train")) == 2
  assert all(f.endswith(".tfrecord.gz") for f in metadata.split_files(out, "train"))
  _check_against_reference(out, metadata, examples)
  # The two bad rows are kept, with file, line and reason, and counted.
  assert metadata.splits["train"].num_rejected == 2
  with open(os.path.join(out, metadata.splits["train"].rejected_file), "rb") as f:
    rejected = f.read().decode().splitlines()
  assert rejected[0] == "file\tline\treason\traw_row"
  assert rejected[1].startswith(os.path.join(data, "train.tsv") + "\t14\texpected at least 5")
  assert "\t15\tlabel '9' is not in the task's labels" in rejected[2]
  on_disk = json.loads(open(os.path.join(out, schema.METADATA_FILE)).read())
  assert on_disk == metadata.to_dict()
  assert schema.read_metadata(out) == metadata


def test_real_tweets_custom_task(tmp_path):
  data, out = str(tmp_path / "data"), str(tmp_path / "out")
  corpora.write_tweets_tsv(data, limit=400)
  metadata = beam_job.run(beam_job.config_from_args(["--task-config", os.path.join(data, corpora.TWEETS_TASK_FILE), "--data-dir", data,
                           "--vocab-file", VOCAB, "--max-seq-length", "48", "--output-dir", out,
                           "--splits", "train,dev"]))
  assert metadata.labels == ["negative", "neutral", "positive"] and not metadata.has_text_b
  assert set(metadata.splits) == {"train", "dev"}
  rc = reference.reference_run_classifier()
  examples = {}
  for split in ("train", "dev"):
    with open(os.path.join(data, f"{split}.tsv"), "rb") as f:
      lines = f.read().split(b"\n")[1:-1]
    examples[split] = [rc.InputExample(guid=f"{split}-{i + 1}", text_a=line.split(b"\t")[1],
                                       label=line.split(b"\t")[0].decode())
                       for i, line in enumerate(lines)]
  _check_against_reference(out, metadata, examples)
  assert metadata.splits["train"].num_invalid_utf8 > 0  # the real tweets' bad bytes
  # A finished output is never silently replaced.
  with pytest.raises(FileExistsError, match="holds a finished run"):
    beam_job.run(beam_job.config_from_args(["--task-config", os.path.join(data, corpora.TWEETS_TASK_FILE), "--data-dir", data,
                  "--vocab-file", VOCAB, "--output-dir", out]))


def test_bad_invocations_fail_before_any_work(tmp_path):
  data = str(tmp_path / "data")
  _glue_fixture("cola", data)
  base = ["--data-dir", data, "--vocab-file", VOCAB, "--output-dir", str(tmp_path / "o")]
  with pytest.raises(FileNotFoundError, match=r"dev_matched.tsv not found. Task 'mnli' expects"):
    beam_job.run(beam_job.config_from_args(["--task", "mnli"] + base))
  with pytest.raises(ValueError, match="task 'cola' has no split 'valid'"):
    beam_job.run(beam_job.config_from_args(["--task", "cola", "--splits", "train,valid"] + base))
  with pytest.raises(ValueError, match="--num-shards -1: give 0"):
    beam_job.run(beam_job.config_from_args(["--task", "cola", "--num-shards", "-1"] + base))
  with pytest.raises(ValueError, match="--chunk-bytes 0: give a positive size"):
    beam_job.run(beam_job.config_from_args(["--task", "cola", "--chunk-bytes", "0"] + base))
  with pytest.raises(ValueError, match="--max-seq-length 2 is too small"):
    beam_job.run(beam_job.config_from_args(["--task", "cola", "--max-seq-length", "2"] + base))
  with pytest.raises(FileNotFoundError, match="--vocab-file .*nope.txt not found"):
    beam_job.run(beam_job.config_from_args(["--task", "cola", "--data-dir", data, "--vocab-file", "nope.txt",
                  "--output-dir", str(tmp_path / "o")]))
  assert not os.path.exists(tmp_path / "o")


@pytest.mark.slow  # ~13 s: a design property the line-sharding tests rely on, not a behaviour
def test_the_driver_reads_no_rows_whatever_the_corpus_size(tmp_path, monkeypatch):
  """Planning uses file sizes; only a fixed-size head is read (line endings). The workers,
  separate processes, read the rows."""
  from bertline import fileio
  real_open = fileio.open_read
  read = {}

  class Counting:
    def __init__(self, path):
      self._f, self._path = real_open(path), path

    def __enter__(self):
      return self

    def __exit__(self, *exc):
      self._f.close()

    def read(self, *args):
      data = self._f.read(*args)
      read[self._path] = read.get(self._path, 0) + len(data)
      return data

    def __getattr__(self, name):
      return getattr(self._f, name)

  monkeypatch.setattr(fileio, "open_read", Counting)
  tweets = [text for _, text in corpora.read_tweets() if b"\t" not in text]
  for rows in (2000, 20000):
    data = tmp_path / f"d{rows}"
    data.mkdir()
    body = b"".join((b"positive\t", b"negative\t")[i % 2] + tweets[i % len(tweets)] + b"\n"
                    for i in range(rows))
    (data / "train.tsv").write_bytes(b"label\ttext\n" + body)
    (data / "task.yaml").write_text("name: t\nlabels: [negative, neutral, positive]\nsplits:\n"
                                    "  train: {file: train.tsv, header: true, text_a: 1, label: 0}\n")
    metadata = beam_job.run(beam_job.config_from_args(["--task-config", str(data / "task.yaml"), "--data-dir", str(data),
                             "--vocab-file", VOCAB, "--max-seq-length", "16", "--output-dir",
                             str(tmp_path / f"o{rows}"), "--splits", "train",
                             "--chunk-bytes", "100000", "--direct_num_workers", "2",
                             # Worker processes: reads in this process are the driver's alone.
                             "--direct_running_mode", "multi_processing"]))
    assert metadata.splits["train"].num_examples == rows
  small, large = (read[str(tmp_path / f"d{n}" / "train.tsv")] for n in (2000, 20000))
  assert small == large == 1 << 16  # the head only, however large the file
  assert os.path.getsize(tmp_path / "d20000" / "train.tsv") > 20 * large


def test_single_threaded_ops_only_before_tensorflow_starts():
  """The CLI's process gets one intra-op thread; a process whose TensorFlow runs keeps its pool."""
  import tensorflow as tf
  fresh = ("import tensorflow as tf\n"
           "from bertline.preprocessing import beam_job\n"
           "assert beam_job.single_threaded_ops()\n"
           "tf.constant(1) + 1\n"
           "assert tf.config.threading.get_intra_op_parallelism_threads() == 1\n")
  subprocess.run([sys.executable, "-c", fresh], check=True, timeout=300)
  # This test process has TensorFlow running: left as it is, and no error.
  tf.constant(1) + 1
  before = tf.config.threading.get_intra_op_parallelism_threads()
  assert not beam_job.single_threaded_ops()
  assert tf.config.threading.get_intra_op_parallelism_threads() == before != 1


@pytest.mark.parametrize("flag,closest", [("--max-seq-lenght", "--max-seq-length"),
                                          ("--direct_num_worker", "--direct_num_workers"),
                                          ("--temp_locaton", "--temp_location")])
def test_a_misspelled_flag_or_beam_option_is_refused_before_any_work(tmp_path, flag, closest):
  """Beam only logs the options it cannot parse, and runs on; bertline refuses them."""
  data = str(tmp_path / "data")
  _glue_fixture("cola", data)
  result = subprocess.run(
      [sys.executable, "-m", "bertline", "preprocess", "--task", "cola", "--data-dir", data,
       "--vocab-file", VOCAB, "--output-dir", str(tmp_path / "o"), flag, "2"],
      capture_output=True, text=True, timeout=300)
  assert result.returncode == 2, result.stderr
  last = result.stderr.strip().splitlines()[-1]
  assert last.startswith(f"bertline preprocess: error: unknown flag {flag}; did you mean "
                         f"{closest}?") and "Traceback" not in result.stderr
  assert not os.path.exists(tmp_path / "o")


def test_real_hashtags_multi_label_task_writes_multi_hot_labels(tmp_path):
  # The tweets' 20 most frequent hashtags as labels: a row's label column holds a set.
  data, out = str(tmp_path / "data"), str(tmp_path / "out")
  corpora.write_hashtags_tsv(data, limit=500)
  with open(os.path.join(data, "train.tsv"), "ab") as f:
    f.write(b"nfl,notahashtag\tA row naming a label the task does not have\n")
  metadata = beam_job.run(beam_job.config_from_args([
      "--task-config", os.path.join(data, corpora.HASHTAGS_TASK_FILE), "--data-dir", data,
      "--vocab-file", VOCAB, "--max-seq-length", "40", "--output-dir", out]))
  assert metadata.multi_label and len(metadata.labels) == 20
  assert json.load(open(os.path.join(out, schema.METADATA_FILE)))["multi_label"] is True
  rc = reference.reference_run_classifier()
  tok = reference.reference_tokenization().FullTokenizer(VOCAB, do_lower_case=True)
  for split in ("train", "dev"):
    records = {guid: ex for guid, (_, ex) in read_split(out, split).items()}
    with open(os.path.join(data, f"{split}.tsv"), "rb") as f:
      lines = f.read().split(b"\n")[1:-1]
    if split == "train":
      lines = lines[:-1]  # the bad row, rejected below
      bad_line = len(lines) + 2  # the file's line number (header included)
    assert len(records) == len(lines) == metadata.splits[split].num_examples
    multi = 0
    for i, line in enumerate(lines):
      tags, text = line.split(b"\t")
      got = records[f"{split}-{i + 1}"]
      want = [1 if label in tags.decode().split(",") else 0 for label in metadata.labels]
      assert got[schema.LABEL_IDS].tolist() == want, (split, i, tags)
      multi += sum(want) > 1
      # The features are Google's, whatever the labels.
      ref = rc.convert_single_example(10, rc.InputExample(guid="x", text_a=text, label="0"),
                                      ["0"], 40, tok)
      assert got[schema.INPUT_IDS].tolist() == ref.input_ids
    assert multi > 0 or split == "dev"  # real rows with several labels, and empty sets too
  assert (np.array([ex[schema.LABEL_IDS].sum() for _, ex in read_split(out, "train").values()])
          == 0).any()
  with open(os.path.join(out, metadata.splits["train"].rejected_file), "rb") as f:
    rejected = f.read().decode().splitlines()
  assert len(rejected) == 2 and "label 'notahashtag' is not in the task's labels" in rejected[1]
  assert f"\t{bad_line}\t" in rejected[1]
