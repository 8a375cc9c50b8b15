"""Loss scaling for mixed_float16: float16 gradients underflow without it.

Dynamic (the default, Keras' LossScaleOptimizer's values): the loss is
multiplied by a scale that starts at 2^15; a step whose gradients are not
finite is skipped and the scale halved; after 2000 good steps in a row it
doubles. A positive --loss-scale is a static scale instead. Outside float16
the scale is the constant 1 and nothing is multiplied. Both counters live in
the checkpoint, so a resumed run continues with the same scale.
"""

from __future__ import annotations

import logging

import tensorflow as tf

log = logging.getLogger("bertline.train")

INITIAL_SCALE = 2.0 ** 15
GROWTH_STEPS = 2000


class LossScale:
  """The scale and its good-step counter (create inside the strategy's scope).

  Args:
    policy: str. The Keras mixed-precision policy trained with.
    static_scale: float. A fixed scale for mixed_float16 (0: dynamic).
  """

  def __init__(self, policy: str, static_scale: float = 0.0):
    self.float16 = policy == "mixed_float16"
    self.dynamic = self.float16 and not static_scale
    self.scale = tf.Variable(INITIAL_SCALE if self.dynamic else (static_scale or 1.0),
                             trainable=False, dtype=tf.float32, name="loss_scale",
                             aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
    self.good_steps = tf.Variable(0, trainable=False, dtype=tf.int64, name="good_steps",
                                  aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)

  @property
  def variables(self):
    """What the checkpoint keeps: [scale, good steps since the last change]."""
    return [self.scale, self.good_steps]

  def scaled(self, loss: tf.Tensor, scale: tf.Tensor) -> tf.Tensor:
    return loss * scale if self.float16 else loss

  def unscaled(self, grads, scale: tf.Tensor):
    return [g / scale for g in grads] if self.float16 else grads

  def update(self, gradient_norm: tf.Tensor) -> None:
    """After a step (in the step's graph): halve on a non-finite norm, double after a streak."""
    if not self.dynamic:
      return
    finite = tf.math.is_finite(gradient_norm)
    good = tf.where(finite, self.good_steps + 1, 0)
    grow = good >= GROWTH_STEPS
    self.scale.assign(tf.where(finite, tf.where(grow, self.scale * 2.0, self.scale),
                               tf.maximum(self.scale / 2.0, 1.0)))
    self.good_steps.assign(tf.where(grow, tf.constant(0, tf.int64), good))

  def skipped_update(self, step: int, iterations: tf.Variable) -> bool:
    """Whether the step just run was skipped for non-finite gradients (the optimizer's
    iterations did not advance past `step`); logs the new scale when it was."""
    if not self.dynamic or int(iterations.numpy()) != step:
      return False
    log.info("float16 gradients overflowed at step %d: update skipped, loss scale now %g.",
             step + 1, float(self.scale.numpy()))
    return True

  @property
  def exhausted(self) -> bool:
    """The scale has fallen to 1 and gradients still overflow: float16 cannot train this."""
    return float(self.scale.numpy()) <= 1.0
