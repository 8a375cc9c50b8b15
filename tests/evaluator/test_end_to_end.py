"""The trainer's real model_dir through evaluate, export, push and predict, by the CLI."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from bertline import cli, schema
from tests.conftest import VOCAB


# The same CLI chain runs in README's quickstart block (tests/test_docs.py), a baseline of the
# model in production in the pipeline's e2e tests, and the multi-label chain in
# tests/evaluator/test_thresholds.py: behind the marker, to keep the suite in its budget.
@pytest.mark.slow
def test_trained_model_dir_is_evaluated_exported_and_pushed(tweets_data, tmp_path):
  from bertline.preprocessing.tokenization import load_vocab
  from bertline.model.model_config import ModelConfig

  config = tmp_path / "tiny_config.json"
  ModelConfig(vocab_size=len(load_vocab(VOCAB)), hidden_size=32, num_hidden_layers=2,
              num_attention_heads=2, intermediate_size=64,
              max_position_embeddings=64).write(str(config))
  model_dir, export_dir, registry = (str(tmp_path / n) for n in ("model", "export", "registry"))
  assert cli.main(["train", "--data-dir", tweets_data["data"], "--model-dir", model_dir,
                   "--model-config-file", str(config), "--vocab-file", VOCAB, "--max-steps", "4",
                   "--batch-size", "16", "--eval-every-steps", "4", "--no-progress"]) == 0
  assert cli.main(["evaluate", "--model-dir", model_dir, "--data-dir", tweets_data["data"],
                   "--threshold", "eval_accuracy=0.0"]) == 0
  with open(os.path.join(model_dir, schema.METRICS_FILE)) as f:
    metrics = json.load(f)
  assert metrics["num_examples"] == schema.read_metadata(tweets_data["data"]).splits[
      "dev"].num_examples
  assert cli.main(["export", "--model-dir", model_dir, "--export-dir", export_dir,
                   "--version", "1"]) == 0
  exported = os.path.join(export_dir, "1")
  # evaluate's blessing travelled with the export, and push accepts it.
  assert os.path.exists(os.path.join(exported, "assets.extra", schema.BLESSING_FILE))
  assert cli.main(["push", "--model", exported, "--to", registry]) == 0
  with open(os.path.join(registry, "1", schema.PUSH_COMPLETE_MARKER)) as f:
    record = json.load(f)
  assert record["blessed"] is True and record["forced"] is False
  with open(os.path.join(registry, "1", "assets", schema.ASSET_METADATA)) as f:
    assert json.load(f)["metrics"]["eval_accuracy"] == metrics["eval_accuracy"]

  # The pushed model, evaluated as a baseline of the model it came from: the same numbers.
  out = str(tmp_path / "vs_prod")
  assert cli.main(["evaluate", "--model-dir", model_dir, "--data-dir", tweets_data["data"],
                   "--baseline-model", os.path.join(registry, "1"), "--output-dir", out]) == 0
  with open(os.path.join(out, schema.METRICS_FILE)) as f:
    again = json.load(f)
  assert again["baseline"]["eval_accuracy"] == again["eval_accuracy"] == metrics["eval_accuracy"]
  assert np.isclose(again["baseline"]["eval_loss"], again["eval_loss"], rtol=1e-5)
  loaded = tf.saved_model.load(os.path.join(registry, "1"))
  assert loaded.signatures["serving_default"](text_a=tf.constant(["ok"]))["label"].shape == (1,)
