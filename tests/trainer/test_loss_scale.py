"""trainer/loss_scale.py: float16's dynamic loss scale skips overflowing steps and shrinks."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from bertline.trainer import train
from tests.trainer import helpers


def test_float16_dynamic_loss_scale_skips_overflowing_steps(lang_records, tiny_config, tmp_path,
                                                            monkeypatch):
  # A scale so large the float16 gradients overflow: those steps are skipped and
  # the scale halves until they fit; the run still makes its 8 updates.
  from bertline.trainer import loss_scale
  monkeypatch.setattr(loss_scale, "INITIAL_SCALE", 2.0 ** 28)
  result = train.run(helpers.train_config(lang_records, tmp_path / "m", tiny_config, max_steps=8,
                             eval_every_steps=100, mixed_precision="mixed_float16"))
  assert result.final_step == 8
  reader = tf.train.load_checkpoint(result.latest_checkpoint)
  scale = reader.get_tensor("loss_scale/0/.ATTRIBUTES/VARIABLE_VALUE")
  assert 1.0 < scale < 2.0 ** 28
  assert reader.get_tensor("optimizer/iterations/.ATTRIBUTES/VARIABLE_VALUE") == 8
  for w in helpers.weights(tmp_path / "m"):
    assert np.all(np.isfinite(w))
  assert np.isfinite(result.final_metrics["eval_loss"])
