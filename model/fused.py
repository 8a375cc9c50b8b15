"""XLA-fused elementwise kernels for the transformer layer's training pass.

A MiniLM/BERT training step on CPU spends its matmuls in oneDNN (AMX or
AVX512-BF16 under mixed_bfloat16), and was then dominated by the dozens of
elementwise Eigen kernels around them: bias adds and their gradients, GELU
and its autodiff, scale-mask-softmax-dropout, dropout-residual-LayerNorm,
and the casts between. Each is one pass over a [tokens, width] tensor.
Here each such chain is one XLA-compiled kernel forward and one backward
(a closed-form gradient under tf.custom_gradient); only the elementwise math
and the row reductions are compiled, so the matmuls stay on oneDNN (an XLA
matmul on CPU has no AMX: a whole-step jit_compile was 1.6x slower).

Math is float32 inside every kernel whatever the compute dtype, rounded once
on the way out (unfused, bfloat16 elementwise ops round after each op).
Dropout draws come in from the layer (modeling.Dropout.draws_for: the same
Philox draws, in the same order, as the unfused layer makes), so a step
with the same seeds drops the same elements; XLA's own Philox on CPU was
100x slower than TensorFlow's kernel.

XLA compiles a kernel once per input shape: a batch of a length not seen
before costs ~0.55 s of compiling (MiniLM, 2 cores), against ~0.1 s saved on
every step at length 40, so with trimmed batches (each its own longest
length) a run pays once per distinct length; `--bucket-boundaries` bounds
how many there are. (`make demo`, 200 steps of lengths up to 64, trained in
2 min 47 s, both evaluations included, on the 2-core machine.)

Inference never uses these: exports, TF Lite and the parity with
transformers run the plain ops. tests/trainer/test_fused.py holds each kernel
against the unfused ops and their autodiff.
"""

from __future__ import annotations

import math
from typing import Optional, Tuple

import tensorflow as tf

_INV_SQRT_2 = 1.0 / math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)

# (int16 draws, keep threshold, keep scale) from modeling.Dropout.draws_for, or None.
Draws = Optional[Tuple[tf.Tensor, int, float]]


def _unpack(dropout: Draws):
  return dropout if dropout is not None else (None, 0, 1.0)


def _dropped(x, draws, threshold, keep_scale):
  if draws is None:
    return x
  return tf.where(draws >= tf.constant(threshold, tf.int16), x * keep_scale, tf.zeros_like(x))


def _gelu_f32(z):
  return 0.5 * z * (1.0 + tf.math.erf(z * _INV_SQRT_2))


def _gelu_grad_f32(z):
  return 0.5 * (1.0 + tf.math.erf(z * _INV_SQRT_2)) + z * tf.exp(-0.5 * z * z) * _INV_SQRT_2PI


def _column_sum(x):
  return tf.reduce_sum(tf.reshape(x, [-1, tf.shape(x)[-1]]), axis=0)


# --- GELU (erf) of a dense layer's matmul plus its bias ----------------------------------

@tf.function(jit_compile=True, autograph=False)
def _bias_gelu_forward(h, bias):
  return tf.cast(_gelu_f32(tf.cast(h, tf.float32) + bias), h.dtype)


@tf.function(jit_compile=True, autograph=False)
def _bias_gelu_backward(h, bias, dy):
  dz = tf.cast(dy, tf.float32) * _gelu_grad_f32(tf.cast(h, tf.float32) + bias)
  return tf.cast(dz, h.dtype), _column_sum(dz)


def bias_gelu(h: tf.Tensor, bias: tf.Tensor) -> tf.Tensor:
  """gelu(h + bias) (the exact erf form), in h's dtype; bias float32 [width]."""
  bias = tf.cast(bias, tf.float32)

  @tf.custom_gradient
  def fused(h, bias):
    return _bias_gelu_forward(h, bias), lambda dy: _bias_gelu_backward(h, bias, dy)

  return fused(h, bias)


# --- attention probabilities: scale, mask, softmax, dropout -------------------------------

@tf.function(jit_compile=True, autograph=False)
def _attention_probs_forward(scores, bias, draws, scale, threshold, keep_scale):
  probs = tf.nn.softmax(tf.cast(scores, tf.float32) * scale + bias, axis=-1)
  return tf.cast(_dropped(probs, draws, threshold, keep_scale), scores.dtype), probs


@tf.function(jit_compile=True, autograph=False)
def _attention_probs_backward(dy, probs, draws, scale, threshold, keep_scale, dtype):
  dp = _dropped(tf.cast(dy, tf.float32), draws, threshold, keep_scale)
  ds = probs * (dp - tf.reduce_sum(dp * probs, axis=-1, keepdims=True))
  return tf.cast(ds * scale, dtype)


def attention_probs(scores: tf.Tensor, bias: tf.Tensor, scale: float,
                    dropout: Draws = None) -> tf.Tensor:
  """dropout(softmax(float32(scores) * scale + bias)), in scores' dtype.

  Args:
    scores: [batch, heads, q, k] Q.K^T in the compute dtype.
    bias: float32, broadcastable to scores: 0 where attended, -10000 on padding.
    scale: 1 / sqrt(head size).
    dropout: None, or Dropout.draws_for(scores).
  """
  draws, threshold, keep_scale = _unpack(dropout)

  @tf.custom_gradient
  def fused(scores):
    out, probs = _attention_probs_forward(scores, bias, draws, scale, threshold, keep_scale)
    return out, lambda dy: _attention_probs_backward(dy, probs, draws, scale, threshold,
                                                     keep_scale, scores.dtype)

  return fused(scores)


# --- bias, dropout, residual and LayerNorm ------------------------------------------------

@tf.function(jit_compile=True, autograph=False)
def _residual_layer_norm_forward(h, bias, residual, gamma, beta, draws, epsilon, threshold,
                                 keep_scale):
  z = _dropped(tf.cast(h, tf.float32) + bias, draws, threshold, keep_scale)
  z += tf.cast(residual, tf.float32)
  mean = tf.reduce_mean(z, axis=-1, keepdims=True)
  variance = tf.reduce_mean(tf.math.squared_difference(z, mean), axis=-1, keepdims=True)
  rstd = tf.math.rsqrt(variance + epsilon)
  xhat = (z - mean) * rstd
  return tf.cast(xhat * gamma + beta, residual.dtype), xhat, rstd


@tf.function(jit_compile=True, autograph=False)
def _residual_layer_norm_backward(dout, xhat, rstd, gamma, draws, threshold, keep_scale,
                                  h_dtype, residual_dtype):
  dy = tf.cast(dout, tf.float32)
  g = dy * gamma
  dz = rstd * (g - tf.reduce_mean(g, axis=-1, keepdims=True)
               - xhat * tf.reduce_mean(g * xhat, axis=-1, keepdims=True))
  dh = _dropped(dz, draws, threshold, keep_scale)
  return (tf.cast(dh, h_dtype), _column_sum(dh), tf.cast(dz, residual_dtype),
          _column_sum(dy * xhat), _column_sum(dy))


def residual_layer_norm(h: tf.Tensor, bias: tf.Tensor, residual: tf.Tensor, gamma: tf.Tensor,
                        beta: tf.Tensor, epsilon: float, dropout: Draws = None) -> tf.Tensor:
  """LayerNorm(dropout(h + bias) + residual) over the last axis, in residual's dtype.

  BERT's "output" sub-layer after a dense layer's matmul: h is the matmul,
  bias the dense layer's, residual the sub-layer's input; bias, gamma and
  beta are float32 [width]; dropout is None or Dropout.draws_for(h).
  """
  draws, threshold, keep_scale = _unpack(dropout)
  bias, gamma, beta = (tf.cast(t, tf.float32) for t in (bias, gamma, beta))

  @tf.custom_gradient
  def fused(h, bias, residual, gamma, beta):
    out, xhat, rstd = _residual_layer_norm_forward(h, bias, residual, gamma, beta, draws,
                                                   float(epsilon), threshold, keep_scale)

    def grad(dout):
      return _residual_layer_norm_backward(dout, xhat, rstd, gamma, draws, threshold,
                                           keep_scale, h.dtype, residual.dtype)

    return out, grad

  return fused(h, bias, residual, gamma, beta)
