"""BERT's optimizer: AdamWeightDecay with linear warmup and linear decay.

google-research/bert's `optimization.py` rebuilt for TF2 and tf.distribute,
keeping its numbers exactly:

  m  <- β1·m + (1-β1)·g
  v  <- β2·v + (1-β2)·g²
  u  <- m / (√v + ε)  (+ wd·θ unless θ's path matches LayerNorm/layer_norm/bias)
  θ  <- θ - lr·u

with no bias correction (BERT's comment: "the Adam bias correction ... is not
needed"), gradients clipped to global norm 1.0 first, and

  lr(step) = init_lr·step/warmup            while step < warmup
           = init_lr·(1 - step/total)       afterwards (0 from step `total` on)

where `step` is the number of updates already applied (the first update uses
step 0, as BERT's global_step does).

The optimizer is a `tf.Module` whose slots are plain variables listed in the
order of the model's trainable variables, so a `tf.train.Checkpoint` holding
it restores every moment and the step exactly.
"""

from __future__ import annotations

import re
from typing import Callable, List, Optional, Sequence, Tuple

import keras
import tensorflow as tf

# BERT's exclude_from_weight_decay, matched against each variable's path.
EXCLUDE_FROM_WEIGHT_DECAY = ("LayerNorm", "layer_norm", "bias")


class WarmupLinearDecay:
  """BERT's learning rate: linear warmup, then polynomial (power 1) decay to 0.

  Args:
    init_lr: float. Peak learning rate (reached at the end of warmup).
    num_train_steps: int. Updates after which the rate is 0.
    num_warmup_steps: int. Updates of linear warmup (0: none).
  """

  def __init__(self, init_lr: float, num_train_steps: int, num_warmup_steps: int = 0):
    if num_train_steps <= 0:
      raise ValueError(f"num_train_steps must be positive, got {num_train_steps}")
    self.init_lr = float(init_lr)
    self.num_train_steps = int(num_train_steps)
    self.num_warmup_steps = int(num_warmup_steps)

  def __call__(self, step) -> tf.Tensor:
    step = tf.cast(step, tf.float32)
    total = float(self.num_train_steps)
    decayed = self.init_lr * (1.0 - tf.minimum(step, total) / total)
    if not self.num_warmup_steps:
      return decayed
    warmup = self.init_lr * step / float(self.num_warmup_steps)
    return tf.where(step < float(self.num_warmup_steps), warmup, decayed)

  def numpy(self, step: int) -> float:
    """The same schedule in plain Python (for progress display and tests)."""
    if self.num_warmup_steps and step < self.num_warmup_steps:
      return self.init_lr * step / self.num_warmup_steps
    return self.init_lr * (1.0 - min(step, self.num_train_steps) / self.num_train_steps)


def variable_path(variable) -> str:
  """The hierarchical name of a Keras 3 or tf variable (`.path`, else `.name`)."""
  return getattr(variable, "path", None) or variable.name


def _tf_variable(variable) -> tf.Variable:
  """The tf.Variable behind a Keras 3 variable: tf.distribute only knows those."""
  return variable.value if isinstance(variable, keras.Variable) else variable


class AdamWeightDecay(tf.Module):
  """BERT's AdamWeightDecayOptimizer with global-norm clipping, for tf.distribute.

  Call `apply_gradients` in replica context (inside `strategy.run`, or
  anywhere when no strategy is in use) with each replica's gradients of
  `sum(per_example_loss) / global_batch_size`; they are summed across replicas
  and workers, clipped and applied identically everywhere.

  Args:
    learning_rate: callable step -> float tensor, e.g. `WarmupLinearDecay`.
    weight_decay_rate: float. Decoupled weight decay (BERT: 0.01).
    beta_1, beta_2, epsilon: float. Adam's constants (BERT: 0.9, 0.999, 1e-6).
    exclude_from_weight_decay: regexes; a variable whose path matches one is
      not decayed.
    clip_norm: float or None. Global-norm clipping of the summed gradients.
  """

  def __init__(self, learning_rate: Callable[[tf.Tensor], tf.Tensor],
               weight_decay_rate: float = 0.01, beta_1: float = 0.9, beta_2: float = 0.999,
               epsilon: float = 1e-6,
               exclude_from_weight_decay: Sequence[str] = EXCLUDE_FROM_WEIGHT_DECAY,
               clip_norm: Optional[float] = 1.0, name: str = "adam_weight_decay"):
    super().__init__(name=name)
    self.learning_rate = learning_rate
    self.weight_decay_rate = float(weight_decay_rate)
    self.beta_1, self.beta_2, self.epsilon = float(beta_1), float(beta_2), float(epsilon)
    self.exclude_from_weight_decay = list(exclude_from_weight_decay)
    self.clip_norm = clip_norm
    # Updates applied so far (BERT's global_step). ONLY_FIRST_REPLICA lets a
    # replica-context read see one consistent value.
    self.iterations = tf.Variable(0, dtype=tf.int64, trainable=False, name="iterations",
                                  aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
    self._m: List[tf.Variable] = []
    self._v: List[tf.Variable] = []
    self._decay: List[bool] = []

  def do_use_weight_decay(self, path: str) -> bool:
    if not self.weight_decay_rate:
      return False
    return not any(re.search(r, path) for r in self.exclude_from_weight_decay)

  def build(self, variables: Sequence) -> None:
    """Creates the m and v slots of `variables` (call under the strategy's scope)."""
    if self._m:
      return
    strategy = tf.distribute.get_strategy()
    for var in variables:
      tf_var = _tf_variable(var)
      with strategy.extended.colocate_vars_with(tf_var):
        self._m.append(tf.Variable(tf.zeros(tf_var.shape, tf_var.dtype), trainable=False,
                                   name="m"))
        self._v.append(tf.Variable(tf.zeros(tf_var.shape, tf_var.dtype), trainable=False,
                                   name="v"))
      self._decay.append(self.do_use_weight_decay(variable_path(var)))

  def apply_gradients(self, grads_and_vars: Sequence[Tuple[tf.Tensor, object]],
                      skip_nonfinite: bool = False) -> tf.Tensor:
    """Sums gradients over replicas, clips, and applies one update.

    Args:
      grads_and_vars: (gradient, variable) pairs, in the order of `build`.
      skip_nonfinite: bool. Leave weights, slots and step untouched when a
        summed gradient is NaN/Inf (dynamic loss scaling under float16).

    Returns:
      The global norm of the summed gradients before clipping (float32 scalar).
    """
    grads, variables = zip(*grads_and_vars)
    if not self._m:
      raise ValueError("AdamWeightDecay.build(model.trainable_variables) must run before "
                       "apply_gradients (under the strategy's scope).")
    if len(variables) != len(self._m):
      raise ValueError(f"apply_gradients got {len(variables)} variables; the optimizer was "
                       f"built for {len(self._m)}.")
    ctx = tf.distribute.get_replica_context()
    if ctx is None:
      raise ValueError("AdamWeightDecay.apply_gradients must be called in replica context "
                       "(inside strategy.run).")
    grads = [tf.convert_to_tensor(g) for g in grads]
    if ctx.num_replicas_in_sync > 1:
      grads = ctx.all_reduce(tf.distribute.ReduceOp.SUM, grads)
    global_norm = tf.linalg.global_norm(grads)
    finite = tf.math.is_finite(global_norm) if skip_nonfinite else tf.constant(True)
    if skip_nonfinite:
      grads = [tf.where(finite, g, tf.zeros_like(g)) for g in grads]
    if self.clip_norm:
      # As tf.clip_by_global_norm (BERT's call), with the norm already computed.
      grads, _ = tf.clip_by_global_norm(
          grads, self.clip_norm, use_norm=tf.where(finite, global_norm, 0.0))
    lr = tf.cast(self.learning_rate(self.iterations), tf.float32)
    tf_vars = [_tf_variable(v) for v in variables]
    ctx.merge_call(self._distributed_apply, args=(grads, tf_vars, lr, finite, skip_nonfinite))
    return global_norm

  def _distributed_apply(self, strategy, grads, variables, lr, finite, skip):
    updates = []
    for grad, var, m, v, decay in zip(grads, variables, self._m, self._v, self._decay):
      updates.append(strategy.extended.update(
          var, self._update_one, args=(grad, m, v, lr, finite),
          kwargs={"decay": decay, "skip": skip}, group=False))
    with tf.control_dependencies(tf.nest.flatten(updates)):
      return strategy.extended.update(
          self.iterations, lambda it, ok: it.assign_add(tf.cast(ok, tf.int64)), args=(finite,),
          group=False)

  def _update_one(self, var, grad, m, v, lr, finite, decay, skip):
    grad = tf.cast(grad, var.dtype)
    lr = tf.cast(lr, var.dtype)
    new_var, next_m, next_v = _adam_step_xla(
        tf.convert_to_tensor(var), grad, tf.convert_to_tensor(m), tf.convert_to_tensor(v), lr,
        finite, self.beta_1, self.beta_2, self.epsilon,
        self.weight_decay_rate if decay else 0.0, skip)
    return tf.group(var.assign(new_var), m.assign(next_m), v.assign(next_v))


# One variable's update as one XLA-compiled elementwise kernel: unfused it is
# about fourteen passes over the weights, m, v and gradient (Eigen kernels),
# 60 ms a step for BERT's word embeddings alone on 2 CPU cores; fused, 17 ms.
# The arithmetic is BERT's AdamWeightDecayOptimizer's, in its order; XLA may
# contract a multiply-add into one FMA, which rounds once where the unfused
# ops round twice: results differ from them by rounding only, and are no
# further from the exact update (tests/trainer/test_optimization.py).
@tf.function(jit_compile=True, autograph=False)
def _adam_step_xla(var, grad, m, v, lr, finite, beta_1, beta_2, epsilon, weight_decay_rate,
                   skip):
  next_m = beta_1 * m + (1.0 - beta_1) * grad
  next_v = beta_2 * v + (1.0 - beta_2) * tf.square(grad)
  update = next_m / (tf.sqrt(next_v) + epsilon)
  if weight_decay_rate:
    update += weight_decay_rate * var
  if skip:  # a skipped step changes nothing
    return (tf.where(finite, var - lr * update, var), tf.where(finite, next_m, m),
            tf.where(finite, next_v, v))
  return var - lr * update, next_m, next_v


def create_optimizer(init_lr: float, num_train_steps: int, num_warmup_steps: int,
                     weight_decay_rate: float = 0.01, clip_norm: Optional[float] = 1.0
                     ) -> AdamWeightDecay:
  """BERT's `optimization.create_optimizer`: the schedule and the optimizer."""
  return AdamWeightDecay(WarmupLinearDecay(init_lr, num_train_steps, num_warmup_steps),
                         weight_decay_rate=weight_decay_rate, clip_norm=clip_norm)
