"""Fine-tuning speed on your own accelerator: sequences/s and MFU of bertline's training step.

Run on the machine with the GPU (or TPU VM), in the bertline image or venv:

  python benchmarks/gpu.py                                    # BERT-base, B32 S128, bf16, XLA
  python benchmarks/gpu.py --seq-length 512 --batch-size 8 --mixed-precision mixed_float16
  python benchmarks/gpu.py --peak-tflops 312                  # an accelerator not in the table
  python benchmarks/gpu.py --device cpu --layers 2 --steps 3  # a smoke run anywhere

The step is `bertline train`'s own (trainer/loop.py's Trainer: forward, loss,
backward, clipping, AdamWeightDecay, its loss scale, XLA when asked), built on
a freshly initialised BERT of the given shape (BERT-base by default: weights do
not change the speed) over synthetic token ids of exactly --seq-length (no
trimming: every step the same shape). It prints the device, sequences/s over
the timed steps (after --warmup untimed ones, which compile), and the model
FLOPs utilisation:

  MFU = achieved model FLOP/s / the device's peak FLOP/s at that precision,
  model FLOPs per sequence = 6·N·S (N: parameters outside the embeddings; forward
  2·N·S, backward twice that) + 12·L·H·S² (attention scores and mixing, forward and
  backward), the convention of PaLM's appendix B.

The peak comes from --peak-tflops, or from the table below when the GPU's name
is in it (dense bf16/fp16 tensor-core peaks from the vendors' data sheets;
float32 runs are compared with the same peak, which shows what bf16 leaves on
the table). Nothing here was run on a GPU or TPU by bertline's developers (none
is available to them): docs/train.md says so, and BENCHMARKS.md records only
CPU figures.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

# Dense bf16/fp16 tensor-core peak TFLOP/s, per device (vendor data sheets).
PEAK_TFLOPS = {"T4": 65, "L4": 121, "V100": 125, "A10": 125, "A100": 312, "H100": 989,
               "H200": 989, "TPU v3": 123, "TPU v4": 275, "TPU v5e": 197}


def model_flops_per_sequence(layers: int, hidden: int, intermediate: int, seq: int) -> float:
  """Training FLOPs of one sequence: 6·N·S for the dense weights, 12·L·H·S² for attention."""
  per_layer = 4 * hidden * hidden + 2 * hidden * intermediate  # Q, K, V, output; the FFN
  dense = layers * per_layer
  return 6.0 * dense * seq + 12.0 * layers * hidden * seq * seq


def _device_name(tf) -> str:
  gpus = tf.config.list_physical_devices("GPU")
  if gpus:
    details = tf.config.experimental.get_device_details(gpus[0])
    return f"{len(gpus)}x {details.get('device_name', 'GPU')}"
  if tf.config.list_logical_devices("TPU"):
    return "TPU"
  return "CPU"


def _peak(name: str, given: float) -> float:
  if given:
    return given
  for key, tflops in PEAK_TFLOPS.items():
    if key.lower() in name.lower():
      return float(tflops)
  return 0.0


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
  parser.add_argument("--batch-size", type=int, default=32)
  parser.add_argument("--seq-length", type=int, default=128)
  parser.add_argument("--layers", type=int, default=12)
  parser.add_argument("--hidden", type=int, default=768)
  parser.add_argument("--heads", type=int, default=12)
  parser.add_argument("--mixed-precision", default="mixed_bfloat16",
                      choices=("float32", "mixed_bfloat16", "mixed_float16"))
  parser.add_argument("--no-xla", action="store_true")
  parser.add_argument("--steps", type=int, default=30, help="timed steps")
  parser.add_argument("--warmup", type=int, default=3, help="untimed steps first (compilation)")
  parser.add_argument("--device", choices=("auto", "cpu"), default="auto",
                      help="cpu: hide any GPU (a smoke run)")
  parser.add_argument("--peak-tflops", type=float, default=0.0,
                      help="the device's peak TFLOP/s at this precision (default: the table)")
  args = parser.parse_args()
  if args.device == "cpu":
    os.environ["CUDA_VISIBLE_DEVICES"] = ""

  import keras
  import numpy as np
  import tensorflow as tf

  from bertline.model import modeling
  from bertline.model.model_config import ModelConfig
  from bertline.trainer import optimization

  intermediate = 4 * args.hidden
  config = ModelConfig(vocab_size=30522, hidden_size=args.hidden, num_hidden_layers=args.layers,
                       num_attention_heads=args.heads, intermediate_size=intermediate,
                       max_position_embeddings=max(512, args.seq_length))
  keras.mixed_precision.set_global_policy(
      "float32" if args.mixed_precision == "float32" else args.mixed_precision)
  strategy = tf.distribute.MirroredStrategy() if tf.config.list_physical_devices("GPU") \
      else tf.distribute.get_strategy()
  rng = np.random.default_rng(0)
  batch = {"input_ids": rng.integers(1000, 30000, (args.batch_size, args.seq_length), np.int32),
           "input_mask": np.ones((args.batch_size, args.seq_length), np.int32),
           "segment_ids": np.zeros((args.batch_size, args.seq_length), np.int32)}
  labels = rng.integers(0, 2, args.batch_size).astype(np.int32)
  with strategy.scope():
    model = modeling.BertClassifier(config, num_labels=2)
    model({k: tf.constant(v) for k, v in batch.items()}, training=False)
    optimizer = optimization.create_optimizer(2e-5, num_train_steps=10_000, num_warmup_steps=0)
    optimizer.build(model.trainable_variables)
  features = {k: tf.constant(v) for k, v in batch.items()}
  targets = tf.constant(labels)
  scale = 2.0 ** 15 if args.mixed_precision == "mixed_float16" else 1.0

  def replica_step():
    with tf.GradientTape() as tape:
      logits = tf.cast(model(features, training=True)["logits"], tf.float32)
      loss = tf.reduce_mean(modeling.per_example_loss(targets, logits))
      scaled = loss * scale
    grads = [tf.convert_to_tensor(g) / scale
             for g in tape.gradient(scaled, model.trainable_variables)]
    optimizer.apply_gradients(zip(grads, model.trainable_variables))
    return loss

  step = tf.function(lambda: strategy.run(replica_step), jit_compile=not args.no_xla)
  for _ in range(args.warmup):
    step()
  start = time.perf_counter()
  for _ in range(args.steps):
    loss = step()
  float(strategy.reduce(tf.distribute.ReduceOp.MEAN, loss, axis=None))  # wait for the device
  seconds = time.perf_counter() - start
  sequences_per_s = args.steps * args.batch_size / seconds
  flops = model_flops_per_sequence(args.layers, args.hidden, intermediate, args.seq_length)
  device = _device_name(tf)
  peak = _peak(device, args.peak_tflops)
  print(f"device: {device}; BERT L{args.layers} H{args.hidden}, batch {args.batch_size}, "
        f"length {args.seq_length}, {args.mixed_precision}, XLA {'off' if args.no_xla else 'on'}")
  print(f"{sequences_per_s:.1f} sequences/s ({seconds / args.steps * 1000:.1f} ms/step over "
        f"{args.steps} steps), {sequences_per_s * flops / 1e12:.2f} model TFLOP/s")
  if peak:
    print(f"MFU {100 * sequences_per_s * flops / (peak * 1e12):.1f}% of {peak:g} TFLOP/s peak")
  else:
    print("MFU: give --peak-tflops (this device is not in the table)")
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
