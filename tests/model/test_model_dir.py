"""ModelDir reads back what the trainer writes; clear errors otherwise."""

from __future__ import annotations

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from bertline import schema
from bertline.model import model_dir as model_dir_lib
from bertline.model import modeling
from bertline.model.model_config import ModelConfig
from tests.trainer import helpers


def _write_run(path, with_best):
  os.makedirs(path)
  config = ModelConfig.from_json_file(helpers.tiny_model_config(os.path.join(path, "c.json")))
  md = model_dir_lib.ModelDir(path)
  md.write_json(schema.MODEL_CONFIG_FILE, config.to_dict())
  md.write_labels(["en", "zh"])
  md.write_vocab(helpers.VOCAB)
  md.write_json(schema.TRAIN_CONFIG_FILE, {"classifier_dropout": 0.1})
  keras.utils.set_random_seed(1)
  latest = modeling.BertClassifier(config, 2)
  tf.train.CheckpointManager(tf.train.Checkpoint(model=latest), md.checkpoint_dir, 2).save()
  best = None
  if with_best:
    keras.utils.set_random_seed(2)
    best = modeling.BertClassifier(config, 2)
    tf.train.CheckpointManager(tf.train.Checkpoint(model=best), md.best_dir, 1).save()
  return md, latest, best


def test_load_classifier_best_then_latest(tmp_path):
  md, latest, best = _write_run(str(tmp_path / "a"), with_best=True)
  assert md.labels() == ["en", "zh"]
  assert md.model_config().hidden_size == 32
  with open(md.vocab_file) as f, open(helpers.VOCAB) as g:
    assert f.read() == g.read()
  ids = {"input_ids": tf.constant([[101, 2000, 102]]), "input_mask": tf.ones([1, 3], tf.int32),
         "segment_ids": tf.zeros([1, 3], tf.int32)}
  for which, want in (("best", best), ("latest", latest)):
    got = md.load_classifier(which)(ids)["logits"].numpy()
    np.testing.assert_allclose(got, want(ids)["logits"].numpy(), rtol=1e-6)
  # No best yet: best falls back to latest.
  md2, latest2, _ = _write_run(str(tmp_path / "b"), with_best=False)
  np.testing.assert_allclose(md2.load_classifier("best")(ids)["logits"].numpy(),
                             latest2(ids)["logits"].numpy(), rtol=1e-6)


def test_errors_name_the_model_dir(tmp_path):
  md = model_dir_lib.ModelDir(str(tmp_path / "nothing"))
  with pytest.raises(FileNotFoundError, match="labels.txt not found.*not a finished"):
    md.labels()
  os.makedirs(md.path)
  with pytest.raises(FileNotFoundError, match="no checkpoint in .*has not saved one"):
    md.checkpoint("best")
  with pytest.raises(ValueError, match="choose 'best' or 'latest'"):
    md.checkpoint("newest")
