"""model/fused.py's kernels against the unfused TensorFlow ops and their autodiff."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from bertline.model import fused, modeling
from bertline.model.model_config import ModelConfig


@pytest.fixture(autouse=True)
def _float32_policy():
  keras.mixed_precision.set_global_policy("float32")
  yield
  keras.mixed_precision.set_global_policy("float32")


def _grads(fn, inputs, dy):
  with tf.GradientTape() as tape:
    for t in inputs:
      tape.watch(t)
    out = fn(*inputs)
  grads = tape.gradient(out, inputs, tf.cast(dy, out.dtype))
  return [tf.cast(t, tf.float32).numpy() for t in [out] + grads]


@pytest.mark.parametrize("dtype,tol", [("float32", 2e-6), ("bfloat16", 2e-2)])
def test_bias_gelu_is_gelu_of_the_sum_with_its_gradient(dtype, tol):
  h = tf.cast(tf.random.stateless_normal([4, 9, 64], [1, 2], stddev=2.0), dtype)
  bias = tf.random.stateless_normal([64], [3, 3])
  dy = tf.cast(tf.random.stateless_normal([4, 9, 64], [3, 4]), dtype)
  got = _grads(fused.bias_gelu, [h, bias], dy)
  want = _grads(lambda h, b: modeling.gelu(tf.cast(h, tf.float32) + b), [h, bias], dy)
  assert fused.bias_gelu(h, bias).dtype == h.dtype
  for g, w in zip(got, want):
    np.testing.assert_allclose(g, w, rtol=tol, atol=tol * max(1.0, np.abs(w).max() / 100))


@pytest.mark.parametrize("rate", [0.1, 0.0])
def test_attention_probs_match_the_unfused_ops_and_their_gradient(rate):
  """scale, mask, softmax and dropout in one kernel: the same mask, values and gradient."""
  shape = (3, 2, 9, 9)
  scores = tf.random.stateless_normal(shape, [5, 6], stddev=3.0)
  mask = tf.constant((np.arange(9)[None, :] < np.array([9, 5, 2])[:, None]).astype(np.float32))
  bias = tf.reshape((1.0 - mask) * -10000.0, [3, 1, 1, 9])
  dy = tf.random.stateless_normal(shape, [7, 8])
  fused_layer, plain_layer = modeling.Dropout(rate, seed=5), modeling.Dropout(rate, seed=5)
  probs, grad = _grads(
      lambda s: fused.attention_probs(s, bias, 0.25, fused_layer.draws_for(s)), [scores], dy)
  want_probs, want_grad = _grads(
      lambda s: plain_layer(tf.nn.softmax(s * 0.25 + bias, axis=-1), training=True), [scores], dy)
  np.testing.assert_array_equal(probs == 0, want_probs == 0)  # the same dropout mask
  if rate:
    assert 0 < (probs == 0).mean() < 0.5
  np.testing.assert_allclose(probs, want_probs, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(grad, want_grad, rtol=1e-4, atol=1e-6)
  assert np.all(probs[2, :, :, 2:] == 0)  # padding gets no attention


@pytest.mark.parametrize("rate", [0.1, 0.0])
def test_residual_layer_norm_matches_keras_ops_and_their_gradient(rate):
  rng = np.random.default_rng(0)
  h, residual, dy = (tf.constant(rng.normal(0.3, s, (20, 32)).astype(np.float32))
                     for s in (2.0, 1.0, 1.0))
  bias, gamma, beta = (tf.constant(rng.normal(m, 0.3, 32).astype(np.float32)) for m in (0, 1, 0))
  fused_layer, plain_layer = modeling.Dropout(rate, seed=9), modeling.Dropout(rate, seed=9)

  def plain(h, bias, residual, gamma, beta):
    return keras.ops.layer_normalization(plain_layer(h + bias, training=True) + residual,
                                         gamma, beta, epsilon=1e-12)

  inputs = [h, bias, residual, gamma, beta]
  got = _grads(lambda *a: fused.residual_layer_norm(
      *a, epsilon=1e-12, dropout=fused_layer.draws_for(h)), inputs, dy)
  want = _grads(plain, inputs, dy)
  names = ["out", "dh", "dbias", "dresidual", "dgamma", "dbeta"]
  for name, g, w in zip(names, got, want):
    np.testing.assert_allclose(g, w, rtol=1e-4, atol=2e-5, err_msg=name)
  if rate:  # dropped elements get no gradient through h
    assert 0 < (got[1] == 0).mean() < 0.3


def _layer_pair(policy, rate):
  keras.mixed_precision.set_global_policy(policy)
  keras.utils.set_random_seed(4)
  config = ModelConfig(vocab_size=40, hidden_size=32, num_hidden_layers=1,
                       num_attention_heads=4, intermediate_size=64, max_position_embeddings=24,
                       hidden_dropout_prob=rate, attention_probs_dropout_prob=rate,
                       initializer_range=0.3)  # weights large enough for dropout to show
  layer = modeling.TransformerLayer(config)
  layer.build((None, None, 32))
  return layer


@pytest.mark.parametrize("policy,tol", [("float32", 2e-5), ("mixed_bfloat16", 0.05)])
def test_fused_layer_trains_like_the_unfused_layer(policy, tol):
  """A whole transformer layer: fused and unfused, same seeds, same outputs and gradients."""
  layer = _layer_pair(policy, 0.1)
  dtype = layer.compute_dtype
  x = tf.cast(tf.random.stateless_normal([3, 9, 32], [1, 1]), dtype)
  input_mask = tf.constant((np.arange(9)[None, :] < np.array([9, 5, 2])[:, None]).astype(np.int32))
  dy = tf.cast(tf.random.stateless_normal([3, 9, 32], [2, 2]), dtype)
  states = [d.seed_generator.state.numpy() for d in (layer.attention_dropout, layer.hidden_dropout)]
  results = []
  for fuse in (True, False):
    layer.fused_training = fuse
    for d, state in zip((layer.attention_dropout, layer.hidden_dropout), states):
      d.seed_generator.state.assign(state)
    with tf.GradientTape() as tape:
      tape.watch(x)
      out = layer(x, input_mask, training=True)
    grads = tape.gradient(out, [x] + layer.trainable_variables, dy)
    assert out.dtype == dtype
    results.append([tf.cast(t, tf.float32).numpy() for t in [out] + grads])
  names = ["out", "dx"] + [v.path for v in layer.trainable_variables]
  for name, got, want in zip(names, *results):
    scale = max(1.0, float(np.abs(want).max()))
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol * scale, err_msg=name)
  # Dropout was on: the same elements were dropped, so the outputs differ from inference.
  layer.fused_training = True
  inference = tf.cast(layer(x, input_mask), tf.float32).numpy()
  assert np.abs(results[0][0] - inference).max() > 0.05
  assert math.isfinite(float(np.sum(results[0][0])))
