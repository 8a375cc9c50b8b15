"""One fine-tuning step, B32 S128: bertline vs transformers, each at its best CPU precision.

Run: .venv/bin/python benchmarks/train_step.py [--seconds 60] [--batch-size 32]

A step is what a fine-tuning loop does per batch: forward, loss, backward,
global-norm clipping at 1.0 and an AdamW update (weight decay 0.01). Both
sides start from the real pretrained MiniLM-L6-H384 with a 3-class head and
train on the same batch of real tweets packed to --seq-length tokens:

* bertline: BertClassifier + AdamWeightDecay (what `bertline train` runs), in
  float32 and under Keras' mixed_bfloat16 policy (`--mixed-precision
  mixed_bfloat16`), in one tf.function each;
* transformers BertForSequenceClassification + torch.optim.AdamW, in float32
  and under torch.autocast("cpu", bfloat16), at torch's best thread count
  (1 and all cores tried on two float32 steps; the faster runs both).

Rounds alternate between the variants (benchmarks/honest.py); the load is
recorded before the timed phase and the verdict printed. Each side's bf16
loss after --loss-steps is printed beside its float32 loss, so a speed-up that
stopped learning would show.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from honest import alternating_rates, quiet_load, spread, verdict  # noqa: E402


def _batch(args):
  import numpy as np
  import tensorflow as tf

  from bertline import corpora, resources
  from bertline.preprocessing.features import pack_features
  from bertline.preprocessing.tokenization import BertTokenizer
  tok = BertTokenizer(os.path.join(resources.minilm_dir(), "vocab.txt"), do_lower_case=True)
  rows = corpora.read_tweets(limit=args.batch_size)
  texts = [t.decode("utf-8", "ignore") for _, t in rows]
  # Every row padded to the full length: the step's cost at length 128.
  long_texts = [" ".join(texts[i:] + texts[:i]) for i in range(len(texts))]
  features = pack_features(tok.tokenize(tf.constant(long_texts)), None, args.seq_length,
                           tok.cls_id, tok.sep_id)
  features = {k: v.numpy().astype(np.int32) for k, v in features.items()}
  labels = np.arange(args.batch_size) % 3
  return features, labels


def _bertline_step(policy, features, labels):
  import keras
  import tensorflow as tf

  from bertline import resources
  from bertline.model import checkpoints, modeling
  from bertline.trainer import optimization
  previous = keras.mixed_precision.global_policy()
  keras.mixed_precision.set_global_policy(policy)
  keras.utils.set_random_seed(0)  # the same head and dropout masks in every run
  try:
    files = checkpoints.resolve_pretrained(resources.minilm_dir())
    encoder = modeling.BertEncoder(files.model_config())
    checkpoints.load_pretrained(encoder, files)
    model = modeling.BertClassifier(encoder.config, num_labels=3, encoder=encoder)
  finally:
    keras.mixed_precision.set_global_policy(previous)
  tf_features = {k: tf.constant(v) for k, v in features.items()}
  tf_labels = tf.constant(labels)
  model(tf_features, training=False)
  optimizer = optimization.create_optimizer(5e-5, num_train_steps=10_000, num_warmup_steps=0)
  variables = model.trainable_variables
  optimizer.build(variables)

  @tf.function
  def step():
    with tf.GradientTape() as tape:
      logits = tf.cast(model(tf_features, training=True)["logits"], tf.float32)
      loss = tf.reduce_mean(modeling.per_example_loss(tf_labels, logits))
    grads = tape.gradient(loss, variables)
    optimizer.apply_gradients(zip(grads, variables))
    return loss

  return lambda: float(step().numpy())


def torch_training_step(model, inputs, autocast: bool, threads: int):
  """A transformers model's training step on `inputs` (labels included): loss, backward,
  clipping at 1.0 and torch's AdamW (decay 0.01 but on biases and LayerNorm, eps 1e-6)."""
  import torch
  model.train()
  decay = [p for n, p in model.named_parameters() if not any(x in n for x in ("bias", "LayerNorm"))]
  no_decay = [p for n, p in model.named_parameters() if any(x in n for x in ("bias", "LayerNorm"))]
  opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01},
                           {"params": no_decay, "weight_decay": 0.0}], lr=5e-5, eps=1e-6)

  def step():
    torch.set_num_threads(threads)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
      loss = model(**inputs).loss
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    opt.zero_grad()
    return float(loss.detach())

  return step


def _torch_step(autocast, features, labels, threads):
  import torch
  from transformers import BertForSequenceClassification

  from bertline import resources
  torch.manual_seed(0)
  model = BertForSequenceClassification.from_pretrained(resources.minilm_dir(), num_labels=3)
  inputs = dict(input_ids=torch.tensor(features["input_ids"], dtype=torch.long),
                attention_mask=torch.tensor(features["input_mask"], dtype=torch.long),
                token_type_ids=torch.tensor(features["segment_ids"], dtype=torch.long),
                labels=torch.tensor(labels, dtype=torch.long))
  return torch_training_step(model, inputs, autocast, threads)


def compare(args, steps, torch_step, title: str) -> None:
  """Adds transformers' float32 and bf16-autocast steps at torch's best thread count to `steps`,
  times them all in alternating rounds and prints the table (both step benchmarks use it).

  torch_step(autocast, threads) -> a step function; steps: {name: bertline's step function}.
  """
  import tensorflow as tf
  import torch
  import transformers
  cores = os.cpu_count() or 1
  # torch's best thread count, from two float32 steps at each (after one untimed).
  probe = {}
  for threads in sorted({1, cores}):
    fn = torch_step(False, threads)
    fn()
    start = time.perf_counter()
    fn(), fn()
    probe[threads] = time.perf_counter() - start
  threads = min(probe, key=probe.get)
  for autocast in (False, True):
    name = f"transformers {'bf16 autocast' if autocast else 'float32'}, {threads} thread(s)"
    steps[name] = torch_step(autocast, threads)
  # Steps on the one batch: the loss must fall alike in every precision.
  losses = {name: [fn() for _ in range(args.loss_steps)][-1] for name, fn in steps.items()}

  def counted(fn):
    def run():
      fn()
      return args.batch_size
    return run

  loads = {"timed phase": quiet_load()}
  rounds = alternating_rates({k: counted(v) for k, v in steps.items()}, args.seconds, args.rounds)
  best = {name: max(r) for name, r in rounds.items()}
  ref = max((n for n in best if n.startswith("transformers")), key=best.get)
  _, why = verdict(loads, rounds)
  print(title)
  print(f"machine: {platform.machine()}, {cores} cores; TensorFlow {tf.__version__}, torch "
        f"{torch.__version__}, transformers {transformers.__version__}; load before the timed "
        f"phase {loads['timed phase']:.2f}")
  print(f"torch thread probe (s per 2 steps): {probe}; ratio vs the fastest reference: {ref}")
  print("| variant | sequences/s (best round) | rounds spread | loss after --loss-steps | ratio |")
  print("| --- | ---: | ---: | ---: | ---: |")
  for name, rate in sorted(best.items(), key=lambda kv: kv[1]):
    print(f"| {name} | {rate:.1f} | {spread(rounds[name]):.1%} | {losses[name]:.4f} | "
          f"{rate / best[ref]:.2f}x |")
  print(why)


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--batch-size", type=int, default=32)
  parser.add_argument("--seq-length", type=int, default=128)
  parser.add_argument("--seconds", type=float, default=60.0, help="timed seconds per variant")
  parser.add_argument("--rounds", type=int, default=4)
  parser.add_argument("--loss-steps", type=int, default=8,
                      help="steps each variant takes before timing; its last loss is printed")
  args = parser.parse_args()

  features, labels = _batch(args)
  assert (features["input_mask"].sum(axis=1) == args.seq_length).all()
  steps = {
      "bertline float32": _bertline_step("float32", features, labels),
      "bertline mixed_bfloat16": _bertline_step("mixed_bfloat16", features, labels),
  }
  compare(args, steps, lambda autocast, threads: _torch_step(autocast, features, labels, threads),
          f"One training step (forward, backward, clip, AdamW), MiniLM-L6-H384, batch "
          f"{args.batch_size}, length {args.seq_length}")


if __name__ == "__main__":
  main()
