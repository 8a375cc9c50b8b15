"""evaluator/evaluate.py on real tweets with a tiny classifier, against direct Keras runs."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

from bertline import cli, schema
from bertline.evaluator import evaluate, predict
from bertline.evaluator.config import EvaluateConfig, PredictConfig
from tests.conftest import make_model_dir
from tests.evaluator.helpers import keras_reference


def test_metrics_match_a_direct_keras_run_and_thresholds_gate(tiny_model, tweets_data, tmp_path,
                                                              capsys):
  ref = keras_reference(tiny_model["model"], tweets_data["data"], "dev")
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
