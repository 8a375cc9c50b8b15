"""`bertline train` end to end on real preprocess output with a tiny encoder."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

from bertline import schema
from bertline.trainer import inputs, train
from bertline.model.model_dir import ModelDir
from tests.trainer import helpers


def test_tiny_encoder_learns_real_language_task_end_to_end(lang_records, full_run):
  result, model_dir = full_run
  assert result.final_step == 40  # int(320 / 16 * 2), run_classifier's count
  assert result.final_metrics["eval_num_examples"] == 72  # every dev example, none dropped
  assert result.final_metrics["eval_accuracy"] >= 0.95
  assert result.best_metrics["eval_loss"] <= result.final_metrics["eval_loss"]
  md = ModelDir(str(model_dir))
  assert md.labels() == ["en", "zh"]
  assert md.data_metadata() == schema.read_metadata(lang_records)
  assert train.TrainConfig.from_dict(md.train_config()).learning_rate == 1e-3
  history = md.eval_history()
  assert [h["step"] for h in history] == [10, 20, 30, 40]
  assert os.listdir(os.path.join(md.events_dir, "train"))
  # The best checkpoint, read back by the evaluator's entry point, scores what was logged.
  model = md.load_classifier("best")
  metadata = md.data_metadata()
  correct = total = 0
  for batch in inputs.eval_dataset(lang_records, metadata, 32):
    pred = np.argmax(model(batch)["logits"].numpy(), -1)
    w = batch[schema.IS_REAL_EXAMPLE].numpy()
    correct += float(((pred == batch[schema.LABEL_IDS].numpy()) * w).sum())
    total += w.sum()
  np.testing.assert_allclose(correct / total, result.best_metrics["eval_accuracy"])


def test_refuses_to_resume_on_different_data(lang_records, tiny_config, tmp_path):
  train.run(helpers.train_config(lang_records, tmp_path / "m", tiny_config, max_steps=2))
  other = str(tmp_path / "other")
  shutil.copytree(lang_records, other)
  meta = json.load(open(os.path.join(other, schema.METADATA_FILE)))
  meta["max_seq_length"], meta["labels"] = 32, ["zh", "en"]
  json.dump(meta, open(os.path.join(other, schema.METADATA_FILE), "w"))
  with pytest.raises(ValueError, match=r"max_seq_length: model_dir 64, data 32; labels: "
                     r"model_dir \['en', 'zh'\], data \['zh', 'en'\]"):
    train.run(helpers.train_config(other, tmp_path / "m", tiny_config))
  bigger = json.load(open(tiny_config))
  bigger["hidden_size"] = 64
  json.dump(bigger, open(tmp_path / "bigger.json", "w"))
  with pytest.raises(ValueError, match="holds a different model .*hidden_size: model_dir 32, now 64"):
    train.run(helpers.train_config(lang_records, tmp_path / "m", str(tmp_path / "bigger.json")))


@pytest.mark.parametrize("precision", ["mixed_bfloat16"])
def test_mixed_precision_and_xla_train(lang_records, tiny_config, tmp_path, precision):
  import time

  import keras
  config = helpers.train_config(lang_records, tmp_path / "m", tiny_config, max_steps=20,
                   eval_every_steps=100, mixed_precision=precision, xla=True, learning_rate=2e-3)
  started = time.perf_counter()
  result = train.run(config)
  wall = time.perf_counter() - started
  assert keras.mixed_precision.global_policy().name == "float32"  # the caller's, restored
  assert result.final_step == 20
  assert result.final_metrics["eval_accuracy"] >= 0.9
  # The speed counts the 19 steps after the first (which traces) and nothing else, so
  # it is at least their examples over the whole run's wall time.
  assert result.train_examples_per_second >= 19 * config.batch_size / wall


def test_truncated_training_shard_is_named(lang_records, tiny_config, tmp_path):
  copy = str(tmp_path / "records")
  shutil.copytree(lang_records, copy)
  victim = schema.read_metadata(copy).split_files(copy, "train")[0]
  with open(victim, "r+b") as f:
    f.truncate(os.path.getsize(victim) - 5)
  with pytest.raises(ValueError, match=r"corrupted or truncated TFRecord shard .*" +
                     os.path.basename(victim) + r".*Re-run `bertline preprocess`"):
    train.run(helpers.train_config(copy, tmp_path / "m", tiny_config, eval_every_steps=100))


def test_xla_default_follows_the_device(monkeypatch):
  base = dict(data_dir="d", model_dir="m")
  # This machine is CPU-only, where XLA is slower: off unless asked for.
  assert not train._use_xla(train.TrainConfig(**base), static_shapes=False)
  assert train._use_xla(train.TrainConfig(xla=True, **base), static_shapes=False)
  from bertline.model import modeling
  monkeypatch.setattr(modeling, "default_jit_compile", lambda: True)  # as on a GPU
  assert not train._use_xla(train.TrainConfig(**base), static_shapes=False)  # a shape per length
  assert train._use_xla(train.TrainConfig(bucket_boundaries=[32, 64], **base), static_shapes=False)
  assert train._use_xla(train.TrainConfig(**base), static_shapes=True)  # TPU: fixed shapes
  assert not train._use_xla(train.TrainConfig(xla=False, **base), static_shapes=True)
