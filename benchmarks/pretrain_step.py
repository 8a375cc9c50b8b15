"""One masked-LM pre-training step, B32 S128: bertline vs transformers' BertForMaskedLM.

Run: .venv/bin/python benchmarks/pretrain_step.py [--seconds 60] [--predictions 20]

A step is what a pre-training loop does per batch: forward, the masked-LM loss
over --predictions masked positions per sequence (15% of 128, Google's 20),
backward, global-norm clipping at 1.0 and an AdamW update. Both sides start
from the real MiniLM-L6-H384 with new masked-LM heads and train on the same
batch of real tweets packed to --seq-length tokens with the same masks:

* bertline: BertPretrainer + AdamWeightDecay (what `bertline pretrain` runs),
  in float32 and under Keras' mixed_bfloat16 policy, in one tf.function each.
  Its head gathers the masked positions before the vocabulary projection, as
  google-research/bert's run_pretraining does;
* transformers BertForMaskedLM + torch.optim.AdamW (labels -100 off the
  masks), in float32 and under torch.autocast("cpu", bfloat16), at torch's
  best thread count. Its head projects every position onto the vocabulary,
  which is how BertForMaskedLM is used.

Rounds alternate between the variants (benchmarks/honest.py); the load is
recorded before the timed phase and the verdict printed.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train_step import _batch, compare, torch_training_step  # noqa: E402  (shared with it)


def _masks(features, predictions, seed=0):
  import numpy as np
  rng = np.random.default_rng(seed)
  ids = features["input_ids"]
  positions = np.stack([np.sort(rng.choice(np.arange(1, ids.shape[1] - 1), predictions,
                                           replace=False)) for _ in ids]).astype(np.int32)
  masked = np.take_along_axis(ids, positions, 1)
  inputs = ids.copy()
  np.put_along_axis(inputs, positions, 103, 1)  # [MASK]
  return inputs, positions, masked


def _bertline_step(policy, features, inputs, positions, masked):
  import keras
  import tensorflow as tf

  from bertline import resources, schema
  from bertline.model import checkpoints, pretrainer
  from bertline.trainer import optimization
  previous = keras.mixed_precision.global_policy()
  keras.mixed_precision.set_global_policy(policy)
  keras.utils.set_random_seed(0)
  try:
    files = checkpoints.resolve_pretrained(resources.minilm_dir())
    model = pretrainer.BertPretrainer(files.model_config(), pairs=False)
    checkpoints.load_pretrained(model, files)
  finally:
    keras.mixed_precision.set_global_policy(previous)
  batch = {schema.INPUT_IDS: tf.constant(inputs), schema.INPUT_MASK:
           tf.constant(features["input_mask"]), schema.SEGMENT_IDS:
           tf.constant(features["segment_ids"]), schema.MASKED_LM_POSITIONS: tf.constant(positions)}
  ids, weights = tf.constant(masked), tf.ones(masked.shape, tf.float32)
  optimizer = optimization.create_optimizer(5e-5, num_train_steps=10_000, num_warmup_steps=0,
                                            clip_norm=1.0)
  variables = model.trainable_variables
  optimizer.build(variables)

  @tf.function
  def step():
    with tf.GradientTape() as tape:
      logits = model(batch, training=True)["mlm_logits"]
      loss = tf.reduce_sum(pretrainer.masked_lm_loss(logits, ids, weights))
    grads = tape.gradient(loss, variables)
    optimizer.apply_gradients(zip(grads, variables))
    return loss

  return lambda: float(step().numpy())


def _torch_step(autocast, features, inputs, positions, masked, threads):
  import numpy as np
  import torch
  from transformers import BertForMaskedLM

  from bertline import resources
  torch.manual_seed(0)
  model = BertForMaskedLM.from_pretrained(resources.minilm_dir())
  labels = np.full(inputs.shape, -100, np.int64)
  np.put_along_axis(labels, positions, masked, 1)
  batch = dict(input_ids=torch.tensor(inputs, dtype=torch.long),
               attention_mask=torch.tensor(features["input_mask"], dtype=torch.long),
               token_type_ids=torch.tensor(features["segment_ids"], dtype=torch.long),
               labels=torch.tensor(labels))
  return torch_training_step(model, batch, autocast, threads)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--batch-size", type=int, default=32)
  parser.add_argument("--seq-length", type=int, default=128)
  parser.add_argument("--predictions", type=int, default=20)
  parser.add_argument("--seconds", type=float, default=60.0, help="timed seconds per variant")
  parser.add_argument("--rounds", type=int, default=4)
  parser.add_argument("--loss-steps", type=int, default=8)
  args = parser.parse_args()

  features, _ = _batch(args)
  inputs, positions, masked = _masks(features, args.predictions)
  steps = {
      "bertline float32": _bertline_step("float32", features, inputs, positions, masked),
      "bertline mixed_bfloat16": _bertline_step("mixed_bfloat16", features, inputs, positions,
                                                masked),
  }
  compare(args, steps,
          lambda autocast, threads: _torch_step(autocast, features, inputs, positions, masked,
                                                threads),
          f"One masked-LM pre-training step (forward, backward, clip, AdamW), MiniLM-L6-H384, "
          f"batch {args.batch_size}, length {args.seq_length}, {args.predictions} masks per row")


if __name__ == "__main__":
  main()
