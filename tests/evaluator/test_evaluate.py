"""evaluate and predict on real tweets with a tiny classifier, against direct Keras runs."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from bertline import cli, schema
from bertline.evaluator import evaluate, predict
from bertline.evaluator.config import EvaluateConfig, PredictConfig
from tests.conftest import make_model_dir


def _keras_reference(model, data_dir, split):
  """guid -> (label_id, probabilities float32) by running the Keras model on full-length rows."""
  metadata = schema.read_metadata(data_dir)
  spec = schema.feature_spec(metadata.max_seq_length)
  out = {}
  for raw in tf.data.TFRecordDataset(metadata.split_files(data_dir, split)).batch(100):
    ex = tf.io.parse_example(raw, spec)
    feats = {k: tf.cast(ex[k], tf.int32) for k in schema.SEQUENCE_FEATURES}
    probs = model(feats, training=False)["probabilities"].numpy()
    for guid, label, p in zip(ex[schema.GUID].numpy()[:, 0], ex[schema.LABEL_IDS].numpy()[:, 0], probs):
      out[guid.decode()] = (int(label), p)
  return out


def test_metrics_match_a_direct_keras_run_and_thresholds_gate(tiny_model, tweets_data, tmp_path,
                                                              capsys):
  ref = _keras_reference(tiny_model["model"], tweets_data["data"], "dev")
  labels = np.array([v[0] for v in ref.values()])
  probs = np.stack([v[1] for v in ref.values()]).astype(np.float64)
  want_acc = float((probs.argmax(-1) == labels).mean())
  want_loss = float(-np.log(probs[np.arange(len(labels)), labels]).mean())

  out = str(tmp_path / "eval")
  # A threshold just above what the model reaches: not blessed, and said why.
  rc = cli.main(["evaluate", "--model-dir", tiny_model["model_dir"], "--data-dir",
                 tweets_data["data"], "--split", "dev", "--output-dir", out,
                 "--threshold", f"eval_accuracy={want_acc + 0.01}",
                 "--threshold", "eval_loss=10"])
  assert rc == 0
  assert "NOT BLESSED" in capsys.readouterr().out
  with open(os.path.join(out, schema.METRICS_FILE)) as f:
    m = json.load(f)
  assert m["num_examples"] == len(ref) == schema.read_metadata(tweets_data["data"]).splits[
      "dev"].num_examples
  assert m["eval_accuracy"] == pytest.approx(want_acc, abs=1e-9)
  assert m["eval_loss"] == pytest.approx(want_loss, rel=1e-5)
  assert np.array(m["confusion_matrix"]).sum() == len(ref)
  assert m["labels"] == ["negative", "neutral", "positive"] and m["binary_f1"] is None
  with open(os.path.join(out, schema.BLESSING_FILE)) as f:
    b = json.load(f)
  assert b["blessed"] is False
  assert [r.split()[0] for r in b["reasons"]] == ["FAIL", "PASS"]  # accuracy fails, loss passes
  assert b["reasons"][0].startswith(f"FAIL eval_accuracy {want_acc:.6g} <")


def test_baseline_is_scored_on_the_same_examples(tiny_model, exported, tweets_data, tmp_path):
  baseline = exported["path"]  # the tiny model, as exported: the model "in production"
  candidate_dir = str(tmp_path / "candidate")
  make_model_dir(candidate_dir, tweets_data["data"], seed=7)
  result = evaluate.run(EvaluateConfig(candidate_dir, tweets_data["data"], "dev",
                                       baseline_model=baseline, max_regression=0.0))
  m = result["metrics"]
  # The baseline's metrics are those of the production model itself, evaluated alone.
  alone = evaluate.run(EvaluateConfig(tiny_model["model_dir"], tweets_data["data"], "dev",
                                      output_dir=str(tmp_path / "alone")))["metrics"]
  assert m["baseline"]["eval_accuracy"] == pytest.approx(alone["eval_accuracy"], abs=1e-9)
  assert m["baseline"]["eval_loss"] == pytest.approx(alone["eval_loss"], rel=1e-5)
  assert m["baseline"]["num_examples"] == m["num_examples"]
  check = [c for c in result["blessing"]["checks"] if c["kind"] == "baseline"]
  assert len(check) == 1 and check[0]["metric"] == "eval_accuracy"
  assert result["blessing"]["blessed"] == (m["eval_accuracy"] >= alone["eval_accuracy"])
  # Files land in the model_dir by default, where export picks the blessing up.
  assert os.path.exists(os.path.join(candidate_dir, schema.BLESSING_FILE))


def test_bad_input_is_a_clear_error(tiny_model, tweets_data, tmp_path):
  other = str(tmp_path / "other_labels")
  shutil.copytree(tweets_data["data"], other)
  meta = schema.read_metadata(other)
  meta.labels = ["positive", "neutral", "negative"]
  meta.write(other)
  with pytest.raises(ValueError, match=r"label mismatch: .* trained with labels \['negative'"):
    evaluate.run(EvaluateConfig(tiny_model["model_dir"], other, "dev"))
  with pytest.raises(ValueError, match="label mismatch"):
    predict.run(PredictConfig(tiny_model["model_dir"], other, "test"))
  untrained = str(tmp_path / "untrained")
  make_model_dir(untrained, tweets_data["data"], with_checkpoint=False)
  with pytest.raises(FileNotFoundError, match="no checkpoint in"):
    evaluate.run(EvaluateConfig(untrained, tweets_data["data"], "dev"))
  with pytest.raises(ValueError, match="has no split 'valid'"):
    evaluate.run(EvaluateConfig(tiny_model["model_dir"], tweets_data["data"], "valid"))
  with pytest.raises(ValueError, match="--threshold acc: unknown metric; choose one of"):
    evaluate.main(["--model-dir", tiny_model["model_dir"], "--data-dir", tweets_data["data"],
                   "--threshold", "acc=0.5"])
  assert not os.path.exists(os.path.join(untrained, schema.METRICS_FILE))


def test_predict_writes_run_classifier_lines_in_input_order(tiny_model, exported, tweets_data,
                                                            tmp_path):
  ref = _keras_reference(tiny_model["model"], tweets_data["data"], "test")
  with open(os.path.join(tweets_data["tsv"], "test.tsv"), "rb") as f:
    n_lines = len(f.read().split(b"\n")) - 2  # header and the final newline
  guids = [f"test-{i}" for i in range(1, n_lines + 1)]  # input line order
  assert sorted(ref) == sorted(guids)

  plain = predict.run(PredictConfig(tiny_model["model_dir"], tweets_data["data"], "test",
                                    str(tmp_path / "test_results.tsv")))
  with open(plain) as f:
    lines = f.read().splitlines()
  assert len(lines) == len(guids)
  for guid, line in zip(guids, lines):
    probs = np.array([float(x) for x in line.split("\t")])
    np.testing.assert_allclose(probs, ref[guid][1], atol=1e-6)
  # run_classifier writes str() of each float32 probability: shortest float32 repr.
  for cell in lines[0].split("\t"):
    assert str(np.float32(cell)) == cell  # not a float64 repr such as 0.3333333432674408

  rc = cli.main(["predict", "--model", exported["path"], "--data-dir", tweets_data["data"],
      "--split", "test", "--output", str(tmp_path / "wide.tsv"), "--with-guid", "--with-label"])
  assert rc == 0
  labels = ["negative", "neutral", "positive"]
  with open(tmp_path / "wide.tsv") as f:
    rows = [line.split("\t") for line in f.read().splitlines()]
  assert [r[0] for r in rows] == guids
  for r in rows:
    np.testing.assert_allclose([float(x) for x in r[1:4]], ref[r[0]][1], atol=1e-5)
    assert r[4] == labels[int(np.argmax(ref[r[0]][1]))]
