"""AdamWeightDecay against BERT's update formula computed in numpy."""

from __future__ import annotations

import re

import keras
import numpy as np
import pytest
import tensorflow as tf

from bertline.trainer import optimization


def _model():
  inputs = keras.Input((3,))
  x = keras.layers.Dense(4, name="dense")(inputs)
  x = keras.layers.LayerNormalization(name="LayerNorm")(x)
  out = keras.layers.Dense(2, use_bias=False, name="out")(x)
  return keras.Model(inputs, out)


def _numpy_bert_step(params, grads, m, v, lr, paths, clip=1.0, wd=0.01):
  """google-research/bert optimization.py, one apply_gradients, in numpy."""
  norm = np.sqrt(sum(np.sum(g.astype(np.float64) ** 2) for g in grads))
  grads = [g * clip / max(norm, clip) for g in grads]
  out = []
  for p, g, mm, vv, path in zip(params, grads, m, v, paths):
    mm = 0.9 * mm + 0.1 * g
    vv = 0.999 * vv + 0.001 * g * g
    update = mm / (np.sqrt(vv) + 1e-6)
    if not any(re.search(r, path) for r in ("LayerNorm", "layer_norm", "bias")):
      update = update + wd * p
    out.append((p - lr * update, mm, vv))
  return out


def _bert_lr(step, init_lr, total, warmup):
  if step < warmup:
    return init_lr * step / warmup
  return init_lr * (1 - min(step, total) / total)


@pytest.mark.parametrize("scale", [1.0, 50.0])  # below and above the clipping norm
def test_steps_match_bert_formula_through_warmup_and_decay(scale):
  tf.random.set_seed(0)
  model = _model()
  x = tf.constant(np.random.RandomState(1).randn(5, 3), tf.float32)
  schedule = optimization.WarmupLinearDecay(0.1, num_train_steps=6, num_warmup_steps=2)
  opt = optimization.AdamWeightDecay(schedule)
  opt.build(model.trainable_variables)
  paths = [optimization.variable_path(v) for v in model.trainable_variables]
  # BERT's exclusion by path: the LayerNorm gamma/beta and the dense bias.
  assert [opt.do_use_weight_decay(p) for p in paths] == [
      not re.search("LayerNorm|bias", p) for p in paths]
  assert sum(opt._decay) == 2

  params = [v.numpy().astype(np.float64) for v in model.trainable_variables]
  m = [np.zeros_like(p) for p in params]
  v = [np.zeros_like(p) for p in params]

  @tf.function
  def step():
    with tf.GradientTape() as tape:
      loss = scale * tf.reduce_sum(tf.square(model(x) - 1.0))
    grads = tape.gradient(loss, model.trainable_variables)
    opt.apply_gradients(zip(grads, model.trainable_variables))
    return grads

  for i in range(4):  # steps 0, 1 in warmup (step 0 has lr 0, as BERT), then decay
    grads = [g.numpy().astype(np.float64) for g in step()]
    lr = _bert_lr(i, 0.1, 6, 2)
    np.testing.assert_allclose(float(schedule(i)), lr, rtol=1e-6)
    new = _numpy_bert_step(params, grads, m, v, lr, paths)
    params, m, v = [n[0] for n in new], [n[1] for n in new], [n[2] for n in new]
    for got, want in zip(model.trainable_variables, params):
      np.testing.assert_allclose(got.numpy(), want, rtol=2e-5, atol=1e-6)
    if i == 0:  # lr 0: the weights have not moved, the moments have
      assert float(opt.iterations.numpy()) == 1
  assert int(opt.iterations.numpy()) == 4
  assert schedule.numpy(6) == 0.0 and float(schedule(100)) == 0.0


def test_checkpoint_restores_slots_and_step_exactly(tmp_path):
  x = tf.constant(np.random.RandomState(2).randn(5, 3), tf.float32)

  def make():
    keras.utils.set_random_seed(3)
    model = _model()
    opt = optimization.create_optimizer(0.01, num_train_steps=10, num_warmup_steps=3)
    opt.build(model.trainable_variables)
    return model, opt

  def train(model, opt, n):
    for _ in range(n):
      with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.square(model(x)))
      grads = tape.gradient(loss, model.trainable_variables)
      opt.apply_gradients(zip(grads, model.trainable_variables))

  model, opt = make()
  train(model, opt, 5)
  want = [v.numpy() for v in model.trainable_variables]

  model, opt = make()
  train(model, opt, 2)
  path = tf.train.Checkpoint(model=model, optimizer=opt).write(str(tmp_path / "ckpt"))
  model2, opt2 = make()
  tf.train.Checkpoint(model=model2, optimizer=opt2).read(path).assert_consumed()
  assert int(opt2.iterations.numpy()) == 2
  train(model2, opt2, 3)
  for got, w in zip(model2.trainable_variables, want):
    np.testing.assert_array_equal(got.numpy(), w)


@pytest.mark.parametrize("decay", [True, False])
def test_fused_update_is_berts_ops_up_to_rounding(decay):
  """The XLA-fused update: BERT's update as separate TensorFlow ops, to rounding.

  Both are held against the update in float64: the fused kernel's largest
  error may not exceed twice the unfused ops' (an FMA rounds once where they
  round twice; near cancellation in m that is many ulps of a tiny m).
  """
  rng = np.random.default_rng(0)
  var, grad, m = (tf.constant(rng.normal(0, s, (300, 384)).astype(np.float32))
                  for s in (0.05, 1e-3, 1e-3))
  v = tf.constant(np.abs(rng.normal(0, 1e-6, (300, 384))).astype(np.float32))
  lr, b1, b2, eps, wd = tf.constant(5e-5), 0.9, 0.999, 1e-6, 0.01
  next_m = b1 * m + (1.0 - b1) * grad
  next_v = b2 * v + (1.0 - b2) * tf.square(grad)
  update = next_m / (tf.sqrt(next_v) + eps)
  if decay:
    update += wd * var
  want = (var - lr * update, next_m, next_v)
  got = optimization._adam_step_xla(var, grad, m, v, lr, tf.constant(True), b1, b2, eps,
                                    wd if decay else 0.0, False)
  f64 = [t.numpy().astype(np.float64) for t in (var, grad, m, v)]
  exact_m = b1 * f64[2] + (1.0 - b1) * f64[1]
  exact_v = b2 * f64[3] + (1.0 - b2) * f64[1] ** 2
  exact_update = exact_m / (np.sqrt(exact_v) + eps) + (wd * f64[0] if decay else 0.0)
  exact = (f64[0] - 5e-5 * exact_update, exact_m, exact_v)
  for g, w, e in zip(got, want, exact):
    np.testing.assert_allclose(g.numpy(), w.numpy(), rtol=1e-6, atol=1e-9)
    assert np.abs(g.numpy() - e).max() <= 2 * np.abs(w.numpy() - e).max()
  assert not np.array_equal(got[0].numpy(), var.numpy())
  # A skipped (non-finite) step leaves all three as they were.
  kept = optimization._adam_step_xla(var, grad, m, v, lr, tf.constant(False), b1, b2, eps,
                                     wd, True)
  for k, old in zip(kept, (var, m, v)):
    np.testing.assert_array_equal(k.numpy(), old.numpy())
