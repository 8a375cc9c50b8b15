"""Evaluating: a diverged model is never blessed, and every file written is strict JSON."""

import json
import os

import numpy as np
import tensorflow as tf

from bertline import schema
from tests.conftest import make_model_dir
from tests.reliability.conftest import bertline


def _strict(path):
  """json.loads that refuses NaN/Infinity, as RFC 8259 and other languages' parsers do."""
  def refuse(constant):
    raise ValueError(f"{path}: non-standard JSON constant {constant}")
  with open(path) as f:
    return json.loads(f.read(), parse_constant=refuse)


def test_a_model_whose_weights_went_nan_is_not_blessed_and_writes_strict_json(tweets_data, tmp_path):
  model_dir = str(tmp_path / "model")
  model = make_model_dir(model_dir, tweets_data["data"], with_checkpoint=False)
  kernel = model.head.kernel
  kernel.assign(np.full(kernel.shape, np.nan, np.float32))  # as after a diverged run
  tf.train.CheckpointManager(tf.train.Checkpoint(model=model),
                             os.path.join(model_dir, schema.CHECKPOINT_SUBDIR), 1).save(1)
  # No bound names eval_loss, and NaN < 0.5 is False as is NaN > 0.5: never blessed anyway.
  result = bertline("evaluate", "--model-dir", model_dir, "--data-dir", tweets_data["data"],
                    "--threshold", "eval_accuracy=0.0")
  assert result.returncode == 0, result.stderr
  metrics = _strict(os.path.join(model_dir, schema.METRICS_FILE))
  blessing = _strict(os.path.join(model_dir, schema.BLESSING_FILE))
  assert metrics["eval_loss"] is None  # NaN is written as null, not as a bare NaN
  assert blessing["blessed"] is False
  assert any(r.startswith("FAIL eval_loss is nan (not a finite number") for r in blessing["reasons"])
  with_loss_bound = bertline("evaluate", "--model-dir", model_dir, "--data-dir",
                             tweets_data["data"], "--threshold", "eval_loss=0.5",
                             "--output-dir", str(tmp_path / "eval2"))
  assert with_loss_bound.returncode == 0, with_loss_bound.stderr
  blessing = _strict(str(tmp_path / "eval2" / schema.BLESSING_FILE))
  assert blessing["blessed"] is False
  assert ["FAIL eval_loss is nan (not a finite number; the model diverged): never blessed "
          "(threshold)"] == [r for r in blessing["reasons"] if "eval_loss" in r]
