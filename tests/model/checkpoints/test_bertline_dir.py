"""model/checkpoints/bertline_dir.py: a bertline model_dir round-trips and warm-starts an encoder."""

import os

import numpy as np
import tensorflow as tf

from bertline import schema
from bertline.model import checkpoints, modeling
from bertline.model.model_config import ModelConfig


def test_bertline_model_dir_round_trip(tmp_path, features):
  config = ModelConfig(vocab_size=30522, hidden_size=16, num_hidden_layers=1,
                       num_attention_heads=2, intermediate_size=32)
  trained = modeling.BertClassifier(config, num_labels=4)
  model_dir = str(tmp_path / "model_dir")
  config.write(os.path.join(model_dir, schema.MODEL_CONFIG_FILE))
  manager = tf.train.CheckpointManager(tf.train.Checkpoint(model=trained, step=tf.Variable(7)),
                                       os.path.join(model_dir, schema.BEST_SUBDIR), max_to_keep=1)
  manager.save()
  files = checkpoints.resolve_pretrained(model_dir)
  assert files.kind == "bertline" and files.model_config() == config
  again = modeling.BertClassifier(files.model_config(), num_labels=4)
  report = checkpoints.load_pretrained(again, model_dir)
  assert report.new == [] and len(report.loaded) == len(again.weights)
  np.testing.assert_array_equal(again(features)["logits"], trained(features)["logits"])
  # Warm start of an encoder from a fine-tuned model: the head goes unused.
  encoder = modeling.BertEncoder(config)
  report = checkpoints.load_pretrained(encoder, manager.latest_checkpoint)
  assert report.unused == [modeling.HEAD_BIAS, modeling.HEAD_KERNEL]
