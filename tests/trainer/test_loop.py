"""trainer/loop.py: the Trainer's actions on a real run — resume after max_steps, SIGTERM and
SIGKILL to the same weights, gradient accumulation, the NaN guard and early stopping."""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from bertline.trainer import train
from bertline.model.model_dir import ModelDir
from tests.trainer import helpers


def test_interrupted_runs_finish_like_an_uninterrupted_one(lang_records, tiny_config, full_run,
                                                          tmp_path):
  """max_steps then continue, SIGTERM, and SIGKILL: all end with the same weights."""
  full, full_dir = full_run
  want = helpers.weights(full_dir)

  # 1. Stop at step 13 (between evaluations), then re-run the same command.
  part = train.run(helpers.train_config(lang_records, tmp_path / "split", tiny_config, max_steps=13))
  assert part.final_step == 13
  again = train.run(helpers.train_config(lang_records, tmp_path / "split", tiny_config))
  assert again.final_step == 40
  assert again.final_metrics == full.final_metrics
  helpers.assert_same_weights(helpers.weights(tmp_path / "split"), want)
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
    proc = subprocess.Popen(cmd, cwd=helpers.ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
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
    resumed = train.run(helpers.train_config(lang_records, model_dir, tiny_config))
    assert resumed.final_step == 40
    assert resumed.final_metrics == full.final_metrics, sig
    helpers.assert_same_weights(helpers.weights(model_dir), want)


def test_gradient_accumulation_matches_the_full_batch(lang_records, tiny_config, tmp_path):
  kw = dict(hidden_dropout=0.0, classifier_dropout=0.0, max_steps=6, eval_every_steps=100)
  train.run(helpers.train_config(lang_records, tmp_path / "one", tiny_config, **kw))
  train.run(helpers.train_config(lang_records, tmp_path / "acc", tiny_config, grad_accum_steps=4, **kw))
  helpers.assert_same_weights(helpers.weights(tmp_path / "acc"), helpers.weights(tmp_path / "one"),
                       rtol=1e-4, atol=2e-6)


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(lang_records, tiny_config, tmp_path):
  config = helpers.train_config(lang_records, tmp_path / "m", tiny_config, learning_rate=1e30,
                   warmup_proportion=0.0, clip_norm=0.0, checkpoint_every_steps=1,
                   eval_every_steps=100)
  with pytest.raises(train.TrainingDiverged, match=r"loss became (nan|inf) at step \d+.*"
                     r"last good checkpoint is .*ckpt-\d+"):
    train.run(config)
  for w in helpers.weights(tmp_path / "m"):
    assert np.all(np.isfinite(w))


def test_early_stopping_on_a_metric(lang_records, tiny_config, tmp_path):
  # Accuracy reaches 1.0 and cannot improve: patience 2 stops two evaluations later.
  result = train.run(helpers.train_config(lang_records, tmp_path / "m", tiny_config, eval_every_steps=5,
                             early_stopping_metric="eval_accuracy", early_stopping_patience=2,
                             epochs=5))
  history = ModelDir(str(tmp_path / "m")).eval_history()
  assert result.stopped_early and result.final_step < 100
  best = max(h["eval_accuracy"] for h in history)
  first_best = next(i for i, h in enumerate(history) if h["eval_accuracy"] == best)
  assert len(history) == first_best + 3
  assert ModelDir(str(tmp_path / "m")).best_info()["step"] == history[first_best]["step"]
