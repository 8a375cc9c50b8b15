"""Fine-tuning: bertline's trainer vs transformers (PyTorch), same data and hyper-parameters.

Run: .venv/bin/python benchmarks/train.py [--tweets N] [--epochs E] [--batch-size B]

In one run, on the same split of the real English tweets (3 classes,
tokenized once by `bertline preprocess`, max_seq_length 128) and from the same
pretrained MiniLM-L6-H384:

  1. bertline, batches trimmed to their longest sequence: one epoch, timed
     end to end (`train.run` including set-up and the dev evaluation), then
     resumed to E epochs (the same command again) for dev accuracy;
  2. bertline, fixed padding to 128 (--no-trim-batches): one epoch timed the
     same way; its steady training speed is the sequences/s at length 128;
  3. transformers BertForSequenceClassification on the same token ids padded
     to 128: AdamW (weight decay 0.01 off bias/LayerNorm, eps 1e-6), linear
     warmup 10% then decay, clipping 1.0, E epochs; sequences/s and accuracy.

The load average before each timed run is recorded and judged
(benchmarks/honest.py). Each contender runs once, so no spread is measured:
repeat the command, and publish a ratio only when the runs agree within 10%.
For the speed of one training step alone, with repeats, see train_step.py.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.dirname(__file__))
from honest import quiet_load, verdict  # noqa: E402  (benchmarks/honest.py)


def _read_split(records, metadata, split):
  import numpy as np
  import tensorflow as tf
  from bertline import schema
  spec = schema.feature_spec(metadata.max_seq_length)
  rows = {k: [] for k in (*schema.SEQUENCE_FEATURES, schema.LABEL_IDS)}
  for raw in tf.data.TFRecordDataset(metadata.split_files(records, split)):
    ex = tf.io.parse_single_example(raw, spec)
    for k in rows:
      rows[k].append(ex[k].numpy())
  return {k: np.stack(v) for k, v in rows.items()}


def _torch_run(model_dir, train, dev, args, steps_per_epoch):
  import numpy as np
  import torch
  from transformers import BertForSequenceClassification, get_linear_schedule_with_warmup
  torch.manual_seed(args.seed)
  torch.set_num_threads(args.torch_threads)
  model = BertForSequenceClassification.from_pretrained(model_dir, num_labels=3)
  decay = [p for n, p in model.named_parameters() if not any(x in n for x in ("bias", "LayerNorm"))]
  no_decay = [p for n, p in model.named_parameters() if any(x in n for x in ("bias", "LayerNorm"))]
  opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01},
                           {"params": no_decay, "weight_decay": 0.0}],
                          lr=args.learning_rate, eps=1e-6)
  total = steps_per_epoch * args.epochs
  sched = get_linear_schedule_with_warmup(opt, int(0.1 * total), total)
  rng = np.random.RandomState(args.seed)
  n = len(train["label_ids"])
  timed, timed_steps, started = 0.0, 0, time.time()
  epoch_seconds = None
  model.train()
  for epoch in range(args.epochs):
    order = rng.permutation(n)
    for s in range(steps_per_epoch):
      idx = order[s * args.batch_size:(s + 1) * args.batch_size]
      t0 = time.perf_counter()
      out = model(input_ids=torch.from_numpy(train["input_ids"][idx]),
                  attention_mask=torch.from_numpy(train["input_mask"][idx]),
                  token_type_ids=torch.from_numpy(train["segment_ids"][idx]),
                  labels=torch.from_numpy(train["label_ids"][idx][:, 0]))
      out.loss.backward()
      torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
      opt.step()
      sched.step()
      opt.zero_grad()
      if epoch or s:
        timed += time.perf_counter() - t0
        timed_steps += 1
    if epoch == 0:
      epoch_seconds = time.time() - started
  model.eval()
  correct = 0
  with torch.no_grad():
    for i in range(0, len(dev["label_ids"]), 64):
      logits = model(input_ids=torch.from_numpy(dev["input_ids"][i:i + 64]),
                     attention_mask=torch.from_numpy(dev["input_mask"][i:i + 64]),
                     token_type_ids=torch.from_numpy(dev["segment_ids"][i:i + 64])).logits
      correct += int((logits.argmax(-1).numpy() == dev["label_ids"][i:i + 64, 0]).sum())
  return {"dev_accuracy": correct / len(dev["label_ids"]),
          "sequences_per_second": timed_steps * args.batch_size / timed,
          "epoch_seconds": epoch_seconds}


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--tweets", type=int, default=38000, help="tweets sampled (80/10/10 split)")
  parser.add_argument("--epochs", type=int, default=3)
  parser.add_argument("--batch-size", type=int, default=32)
  parser.add_argument("--learning-rate", type=float, default=5e-5)
  parser.add_argument("--seed", type=int, default=1)
  parser.add_argument("--torch-threads", type=int, default=2)
  parser.add_argument("--work-dir", default="")
  args = parser.parse_args()

  import tensorflow as tf
  import torch
  import transformers

  from bertline import corpora, resources, schema
  from bertline.preprocessing import beam_job
  from bertline.trainer import train

  work = args.work_dir or tempfile.mkdtemp(prefix="bertline-train-bench-")
  minilm = resources.minilm_dir()
  tsv, records = os.path.join(work, "tsv"), os.path.join(work, "records")
  if not os.path.exists(os.path.join(records, schema.METADATA_FILE)):
    corpora.write_tweets_tsv(tsv, limit=args.tweets)
    beam_job.run(beam_job.config_from_args(["--task-config", os.path.join(tsv, corpora.TWEETS_TASK_FILE),
                  "--data-dir", tsv, "--vocab-file", os.path.join(minilm, "vocab.txt"),
                  "--max-seq-length", "128", "--output-dir", records, "--splits", "train,dev"]))
  metadata = schema.read_metadata(records)
  n_train = metadata.splits["train"].num_examples
  steps_per_epoch = n_train // args.batch_size
  results = {}

  loads = {}

  def bertline_run(name, trim, max_steps):
    loads[f"bertline {name}" + (" (resumed)" if not max_steps else "")] = quiet_load()
    model_dir = os.path.join(work, name)
    config = train.TrainConfig(
        data_dir=records, model_dir=model_dir, init_checkpoint=minilm, epochs=args.epochs,
        batch_size=args.batch_size, eval_batch_size=64, learning_rate=args.learning_rate,
        max_steps=max_steps, eval_every_steps=10 ** 9, seed=args.seed, trim_batches=trim,
        strategy="cpu", progress=False)
    started = time.time()
    result = train.run(config)
    return result, time.time() - started

  for name in ("trimmed", "fixed"):
    shutil.rmtree(os.path.join(work, name), ignore_errors=True)
  trimmed, trimmed_epoch = bertline_run("trimmed", True, steps_per_epoch)
  fixed, fixed_epoch = bertline_run("fixed", False, steps_per_epoch)
  final, _ = bertline_run("trimmed", True, 0)  # resume the trimmed run to all epochs
  results["bertline"] = {
      "dev_accuracy": final.final_metrics["eval_accuracy"],
      "sequences_per_second_len128": fixed.train_examples_per_second,
      "sequences_per_second_trimmed": trimmed.train_examples_per_second,
      "epoch_seconds_trimmed": trimmed_epoch, "epoch_seconds_fixed": fixed_epoch,
      "final_step": final.final_step}

  train_arrays = _read_split(records, metadata, "train")
  dev_arrays = _read_split(records, metadata, "dev")
  loads["transformers"] = quiet_load()
  results["transformers"] = _torch_run(minilm, train_arrays, dev_arrays, args, steps_per_epoch)

  b, t = results["bertline"], results["transformers"]
  results["load_before"] = {k: round(v, 2) for k, v in loads.items()}
  print(json.dumps(results, indent=2))
  print(f"\ntrain {n_train} / dev {metadata.splits['dev'].num_examples} tweets, "
        f"{args.epochs} epochs, batch {args.batch_size}, lr {args.learning_rate}")
  print(f"machine: {platform.machine()}, {os.cpu_count()} cores; TF {tf.__version__}, "
        f"torch {torch.__version__}, transformers {transformers.__version__}")
  print("| | dev accuracy | train seq/s at len 128 | epoch time |")
  print("| --- | ---: | ---: | ---: |")
  print(f"| transformers (torch, {args.torch_threads} threads) | {t['dev_accuracy']:.4f} | "
        f"{t['sequences_per_second']:.1f} | {t['epoch_seconds']:.0f} s (fixed 128) |")
  print(f"| bertline, fixed padding | | {b['sequences_per_second_len128']:.1f} "
        f"({b['sequences_per_second_len128'] / t['sequences_per_second']:.2f}x) | "
        f"{b['epoch_seconds_fixed']:.0f} s |")
  print(f"| bertline, trimmed batches | {b['dev_accuracy']:.4f} | "
        f"({b['sequences_per_second_trimmed']:.1f} at the batches' own lengths) | "
        f"{b['epoch_seconds_trimmed']:.0f} s "
        f"({b['epoch_seconds_fixed'] / b['epoch_seconds_trimmed']:.2f}x faster) |")
  print(verdict(loads, {})[1] + "; one run each, no spread measured: repeat before publishing")


if __name__ == "__main__":
  main()
