"""A multi-label task through every stage, by the CLI: train chooses each label's threshold on
dev, evaluate, export, push's clean-process serving check and batch scoring all call labels
with them, and agree with one another."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from bertline import cli, corpora, schema
from bertline.evaluator import metrics as metrics_lib
from bertline.evaluator import scoring, thresholds
from bertline.exporter.load import Classifier
from tests.conftest import VOCAB


@pytest.fixture(scope="module")
def hashtags(tmp_path_factory):
  root = tmp_path_factory.mktemp("hashtags")
  tsv, data = str(root / "tsv"), str(root / "data")
  corpora.write_hashtags_tsv(tsv, limit=800)
  assert cli.main(["preprocess", "--task-config", os.path.join(tsv, corpora.HASHTAGS_TASK_FILE),
                   "--data-dir", tsv, "--vocab-file", VOCAB, "--max-seq-length", "32",
                   "--output-dir", data]) == 0
  return {"root": root, "tsv": tsv, "data": data}


def test_a_multi_label_model_calls_labels_alike_in_every_stage(hashtags, tiny_minilm, tmp_path):
  data = hashtags["data"]
  metadata = schema.read_metadata(data)
  model_dir, export_dir, registry = (str(tmp_path / n) for n in ("model", "export", "registry"))
  assert cli.main(["train", "--data-dir", data, "--init-checkpoint", tiny_minilm, "--model-dir",
                   model_dir, "--max-steps", "12", "--batch-size", "16", "--learning-rate",
                   "3e-4", "--eval-every-steps", "12", "--no-progress"]) == 0

  # Train ended by choosing each label's threshold on dev: the one maximising its F1 there.
  record = json.load(open(os.path.join(model_dir, schema.THRESHOLDS_FILE)))
  assert record["labels"] == metadata.labels and len(record["thresholds"]) == 20
  loaded = scoring.load_model_dir(model_dir)
  dev = scoring.score_split(scoring.classifier_logits_fn(loaded.classifier), data, metadata, "dev")
  assert record["thresholds"] == metrics_lib.best_f1_thresholds(
      dev["label_ids"], metrics_lib.sigmoid(dev["logits"]))

  assert cli.main(["evaluate", "--model-dir", model_dir, "--data-dir", data, "--split", "test",
                   "--threshold", "micro_f1=0.0"]) == 0
  metrics = json.load(open(os.path.join(model_dir, schema.METRICS_FILE)))
  assert metrics["multi_label"] and metrics["thresholds"] == dict(zip(metadata.labels,
                                                                      record["thresholds"]))
  assert metrics["num_examples"] == metadata.splits["test"].num_examples

  # The export serves them: serving_default's `labels` and `predicted` are the thresholds'
  # calls on its own sigmoids; evaluating the export gives the model_dir's metrics.
  assert cli.main(["export", "--model-dir", model_dir, "--export-dir", export_dir,
                   "--version", "1"]) == 0
  exported = os.path.join(export_dir, "1")
  texts = [line.split("\t", 1)[1] for line in open(os.path.join(hashtags["tsv"], "test.tsv"),
                                                   encoding="utf-8", errors="replace")][1:41]
  out = Classifier(exported).outputs(texts)
  thresholds = np.array(record["thresholds"], np.float32)
  called = out[schema.OUTPUT_PROBABILITIES] >= thresholds
  np.testing.assert_array_equal(out[schema.OUTPUT_PREDICTED], called.astype(np.int32))
  for row, hot in zip(out[schema.OUTPUT_LABELS], called):
    names = [x.decode() for x in row]
    want = [label for label, c in zip(metadata.labels, hot) if c]
    assert names == want + [""] * (20 - len(want))
  # predict's label column: the same calls, from the model_dir.
  assert cli.main(["predict", "--model", model_dir, "--data-dir", data, "--split", "test",
                   "--output", str(tmp_path / "predictions.tsv"), "--with-label"]) == 0
  predicted = [line.rstrip("\n").split("\t")[-1]
               for line in open(tmp_path / "predictions.tsv")][:len(texts)]
  assert predicted == [",".join(x.decode() for x in row if x) for row in out[schema.OUTPUT_LABELS]]
  assert cli.main(["evaluate", "--model-dir", exported, "--data-dir", data, "--split", "test",
                   "--output-dir", str(tmp_path / "export_eval")]) == 0
  of_export = json.load(open(tmp_path / "export_eval" / schema.METRICS_FILE))
  for name in ("micro_f1", "macro_f1", "subset_accuracy", "hamming_loss"):
    assert of_export[name] == pytest.approx(metrics[name], abs=1e-3), name

  # Push's serving check replays the warmup requests in a clean process; score writes the
  # labels the graph calls.
  assert cli.main(["push", "--model", exported, "--to", registry]) == 0
  rows = tmp_path / "rows.txt"
  rows.write_text("\n".join(texts) + "\n", encoding="utf-8")
  assert cli.main(["score", "--model", registry, "--input", str(rows), "--output",
                   str(tmp_path / "scores")]) == 0
  scored = [json.loads(line) for name in sorted(os.listdir(tmp_path / "scores"))
            if name.startswith("predictions") for line in open(tmp_path / "scores" / name)]
  assert len(scored) == len(texts)
  for answer, row in zip(scored, out[schema.OUTPUT_LABELS]):
    assert answer["labels"] == [x.decode() for x in row if x] and "label" not in answer

  # Not built for multi-label models yet, and said so before any work.
  assert cli.main(["export", "--model-dir", model_dir, "--export-dir", export_dir,
                   "--quantize", "int8"]) != 0
  assert sorted(os.listdir(export_dir)) == ["1"]
  assert cli.main(["distill", "--teacher", model_dir, "--student-layers", "1", "--data-dir", data,
                   "--model-dir", str(tmp_path / "student"), "--max-steps", "1"]) != 0
  assert not os.path.exists(tmp_path / "student")


def test_a_fixed_threshold_or_no_dev_split_needs_no_model(tmp_path):
  metadata = schema.DataMetadata(task="t", labels=["a", "b"], splits={"train": schema.SplitInfo(
      "train-*")}, max_seq_length=8, do_lower_case=True, vocab_sha256="x", multi_label=True)
  assert thresholds.choose(str(tmp_path), "", metadata, fixed=0.4)["thresholds"] == [0.4, 0.4]
  record = thresholds.choose(str(tmp_path), "", metadata)  # no dev split to choose on
  assert record["thresholds"] == [0.5, 0.5] and "no dev split" in record["rule"]
  assert scoring.label_thresholds(str(tmp_path), ["a", "b"]) == [0.5, 0.5]
  with pytest.raises(ValueError, match=r"is for labels \['a', 'b'\], not the model's \['b', 'a'\]"):
    scoring.label_thresholds(str(tmp_path), ["b", "a"])
  with pytest.raises(FileNotFoundError, match="run the same train command again"):
    scoring.label_thresholds(str(tmp_path / "elsewhere"), ["a", "b"])
