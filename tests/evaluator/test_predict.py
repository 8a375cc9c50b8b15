"""evaluator/predict.py: run_classifier's test_results.tsv lines, in input order, from a model_dir
or an export, against the Keras model run directly."""

from __future__ import annotations

import os

import numpy as np

from bertline import cli
from bertline.evaluator import predict
from bertline.evaluator.config import PredictConfig
from tests.evaluator.helpers import keras_reference


def test_predict_writes_run_classifier_lines_in_input_order(tiny_model, exported, tweets_data,
                                                            tmp_path):
  ref = keras_reference(tiny_model["model"], tweets_data["data"], "test")
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
