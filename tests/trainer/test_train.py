"""`bertline train` end to end on real preprocess output with a tiny encoder."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from bertline import schema
from bertline.trainer import inputs, train
from bertline.model.model_dir import ModelDir
from tests.trainer import helpers

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def tiny_config(tmp_path_factory):
  return helpers.tiny_model_config(str(tmp_path_factory.mktemp("cfg") / "config.json"))


@pytest.fixture(scope="module")
def full_run(lang_records, tiny_config, tmp_path_factory):
  """An uninterrupted 40-step run (2 epochs) with dropout, evaluated every 10 steps."""
  model_dir = tmp_path_factory.mktemp("full") / "m"
  return train.run(_config(lang_records, model_dir, tiny_config)), model_dir


_config = helpers.train_config


def _weights(model_dir, which="latest"):
  return [v.numpy() for v in ModelDir(str(model_dir)).load_classifier(which).weights]


def _assert_same_weights(a, b, **tol):
  assert len(a) == len(b)
  for x, y in zip(a, b):
    if tol:
      np.testing.assert_allclose(x, y, **tol)
    else:
      np.testing.assert_array_equal(x, y)


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


def test_interrupted_runs_finish_like_an_uninterrupted_one(lang_records, tiny_config, full_run,
                                                          tmp_path):
  """max_steps then continue, SIGTERM, and SIGKILL: all end with the same weights."""
  full, full_dir = full_run
  want = _weights(full_dir)

  # 1. Stop at step 13 (between evaluations), then re-run the same command.
  part = train.run(_config(lang_records, tmp_path / "split", tiny_config, max_steps=13))
  assert part.final_step == 13
  again = train.run(_config(lang_records, tmp_path / "split", tiny_config))
  assert again.final_step == 40
  assert again.final_metrics == full.final_metrics
  _assert_same_weights(_weights(tmp_path / "split"), want)
  # The same evaluations, plus the one that ended the first part at step 13.
  split_history = ModelDir(str(tmp_path / "split")).eval_history()
  assert [h for h in split_history if h["step"] != 13] == \
      ModelDir(str(full_dir)).eval_history()

  # 2./3. A subprocess killed by SIGTERM (saves first) or SIGKILL (loses the
  # steps since its last checkpoint); the re-run finishes identically.
  for sig in (signal.SIGTERM, signal.SIGKILL):
    model_dir = tmp_path / f"killed-{sig.name}"
    cmd = [sys.executable, "-m", "bertline.cli", "train", "--data-dir", lang_records,
           "--model-dir", str(model_dir), "--model-config-file", tiny_config,
           "--vocab-file", helpers.VOCAB, "--batch-size", "16", "--eval-batch-size", "32",
           "--epochs", "2", "--learning-rate", "1e-3", "--eval-every-steps", "10",
           "--checkpoint-every-steps", "3", "--seed", "3", "--no-progress"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 120

    def saved_step():
      latest = tf.train.latest_checkpoint(str(model_dir / "checkpoints"))
      return int(latest.split("-")[-1]) if latest else 0

    while saved_step() < 6 and proc.poll() is None and time.time() < deadline:
      time.sleep(0.02)
    proc.send_signal(sig)
    out = proc.communicate(timeout=60)[0].decode(errors="replace")
    if sig == signal.SIGTERM:
      assert proc.returncode == 143, out
      assert "Re-run the same command to resume" in out
    else:
      assert proc.returncode == -signal.SIGKILL
    assert 6 <= saved_step() < 40, out
    resumed = train.run(_config(lang_records, model_dir, tiny_config))
    assert resumed.final_step == 40
    assert resumed.final_metrics == full.final_metrics, sig
    _assert_same_weights(_weights(model_dir), want)


def test_gradient_accumulation_matches_the_full_batch(lang_records, tiny_config, tmp_path):
  kw = dict(hidden_dropout=0.0, classifier_dropout=0.0, max_steps=6, eval_every_steps=100)
  train.run(_config(lang_records, tmp_path / "one", tiny_config, **kw))
  train.run(_config(lang_records, tmp_path / "acc", tiny_config, grad_accum_steps=4, **kw))
  _assert_same_weights(_weights(tmp_path / "acc"), _weights(tmp_path / "one"),
                       rtol=1e-4, atol=2e-6)


def test_refuses_to_resume_on_different_data(lang_records, tiny_config, tmp_path):
  train.run(_config(lang_records, tmp_path / "m", tiny_config, max_steps=2))
  other = str(tmp_path / "other")
  shutil.copytree(lang_records, other)
  meta = json.load(open(os.path.join(other, schema.METADATA_FILE)))
  meta["max_seq_length"], meta["labels"] = 32, ["zh", "en"]
  json.dump(meta, open(os.path.join(other, schema.METADATA_FILE), "w"))
  with pytest.raises(ValueError, match=r"max_seq_length: model_dir 64, data 32; labels: "
                     r"model_dir \['en', 'zh'\], data \['zh', 'en'\]"):
    train.run(_config(other, tmp_path / "m", tiny_config))
  bigger = json.load(open(tiny_config))
  bigger["hidden_size"] = 64
  json.dump(bigger, open(tmp_path / "bigger.json", "w"))
  with pytest.raises(ValueError, match="holds a different model .*hidden_size: model_dir 32, now 64"):
    train.run(_config(lang_records, tmp_path / "m", str(tmp_path / "bigger.json")))


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(lang_records, tiny_config, tmp_path):
  config = _config(lang_records, tmp_path / "m", tiny_config, learning_rate=1e30,
                   warmup_proportion=0.0, clip_norm=0.0, checkpoint_every_steps=1,
                   eval_every_steps=100)
  with pytest.raises(train.TrainingDiverged, match=r"loss became (nan|inf) at step \d+.*"
                     r"last good checkpoint is .*ckpt-\d+"):
    train.run(config)
  for w in _weights(tmp_path / "m"):
    assert np.all(np.isfinite(w))


def test_early_stopping_on_a_metric(lang_records, tiny_config, tmp_path):
  # Accuracy reaches 1.0 and cannot improve: patience 2 stops two evaluations later.
  result = train.run(_config(lang_records, tmp_path / "m", tiny_config, eval_every_steps=5,
                             early_stopping_metric="eval_accuracy", early_stopping_patience=2,
                             epochs=5))
  history = ModelDir(str(tmp_path / "m")).eval_history()
  assert result.stopped_early and result.final_step < 100
  best = max(h["eval_accuracy"] for h in history)
  first_best = next(i for i, h in enumerate(history) if h["eval_accuracy"] == best)
  assert len(history) == first_best + 3
  assert ModelDir(str(tmp_path / "m")).best_info()["step"] == history[first_best]["step"]


def test_cli_flags_override_the_yaml(tmp_path):
  path = tmp_path / "train.yaml"
  path.write_text("data_dir: d\nmodel_dir: m\nlearning_rate: 2.0e-5\nbatch_size: 8\n"
                  "bucket_boundaries: [16]\n")
  config = train.config_from_args(["--config", str(path), "--batch-size", "64", "--xla",
                                   "--bucket-boundaries", "32,64"])
  assert (config.learning_rate, config.batch_size, config.xla) == (2e-5, 64, True)
  assert config.bucket_boundaries == [32, 64] and config.epochs == 3.0  # run_classifier's
  path.write_text("learning_rat: 1\n")
  with pytest.raises(ValueError, match="unknown key 'learning_rat'"):
    train.config_from_args(["--config", str(path)])
  with pytest.raises(ValueError, match="not a multiple of grad_accum_steps"):
    train.config_from_args(["--batch-size", "10", "--grad-accum-steps", "4"])


@pytest.mark.parametrize("precision", ["mixed_bfloat16"])
def test_mixed_precision_and_xla_train(lang_records, tiny_config, tmp_path, precision):
  import time

  import keras
  config = _config(lang_records, tmp_path / "m", tiny_config, max_steps=20,
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
    train.run(_config(copy, tmp_path / "m", tiny_config, eval_every_steps=100))


def test_float16_dynamic_loss_scale_skips_overflowing_steps(lang_records, tiny_config, tmp_path,
                                                            monkeypatch):
  # A scale so large the float16 gradients overflow: those steps are skipped and
  # the scale halves until they fit; the run still makes its 8 updates.
  from bertline.trainer import loss_scale
  monkeypatch.setattr(loss_scale, "INITIAL_SCALE", 2.0 ** 28)
  result = train.run(_config(lang_records, tmp_path / "m", tiny_config, max_steps=8,
                             eval_every_steps=100, mixed_precision="mixed_float16"))
  assert result.final_step == 8
  reader = tf.train.load_checkpoint(result.latest_checkpoint)
  scale = reader.get_tensor("loss_scale/0/.ATTRIBUTES/VARIABLE_VALUE")
  assert 1.0 < scale < 2.0 ** 28
  assert reader.get_tensor("optimizer/iterations/.ATTRIBUTES/VARIABLE_VALUE") == 8
  for w in _weights(tmp_path / "m"):
    assert np.all(np.isfinite(w))
  assert np.isfinite(result.final_metrics["eval_loss"])


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
