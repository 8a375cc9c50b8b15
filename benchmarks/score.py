"""Batch scoring throughput: `bertline score` vs a transformers pipeline vs `bertline predict`.

Run: .venv/bin/python benchmarks/score.py [--rows 20000] [--torch-threads 1,2]

All three score the same real tweets (cycled to --rows lines) with the same
model — the pretrained MiniLM-L6-H384 with one 3-class head, exported by
bertline from transformers' own weights (benchmarks/serving.py) — on CPU:

* bertline score: the Beam job, raw text in (in-graph tokenizer), DirectRunner
  with a worker process per core, JSON lines out; wall time of the command.
* transformers: pipeline("text-classification") over the same texts in one
  process, fast tokenizer, batch 32 with dynamic padding, at its best
  torch thread count (each of --torch-threads is tried on a sample first).
* bertline predict: over the same texts preprocessed to TFRecords
  (preprocessing timed apart), one process.

The load average is recorded before every measurement (after waiting for the
previous one's load to decay); a run that started above load 1.0 is flagged
and must not be published.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from preprocess import load_average  # noqa: E402  (benchmarks/preprocess.py)
from serving import LABELS, MAX_SEQ_LENGTH, _export_minilm  # noqa: E402


def _texts(rows: int):
  from bertline import corpora
  texts = []
  for _, raw in corpora.read_tweets():
    try:
      text = raw.decode("utf-8")
    except UnicodeDecodeError:
      continue
    if text.strip() and "\t" not in text:
      texts.append(text)
  return list(itertools.islice(itertools.cycle(texts), rows))


def _timed(cmd, loads, name):
  loads[name] = load_average()
  started = time.perf_counter()
  result = subprocess.run(cmd, capture_output=True, text=True)
  seconds = time.perf_counter() - started
  if result.returncode != 0:
    raise RuntimeError(f"{' '.join(cmd)} failed:\n{result.stderr[-3000:]}")
  return seconds


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--rows", type=int, default=20000)
  parser.add_argument("--torch-threads", default="1,2",
                      help="torch thread counts to try; the best runs the full set")
  parser.add_argument("--work-dir", default=None)
  args = parser.parse_args()

  import numpy as np
  import torch
  import transformers

  from bertline import resources
  transformers.logging.set_verbosity_error()
  work = args.work_dir or tempfile.mkdtemp(prefix="bertline-score-bench-")
  os.makedirs(work, exist_ok=True)
  texts = _texts(args.rows)
  text_file = os.path.join(work, "texts.txt")
  with open(text_file, "w", encoding="utf-8") as f:
    f.write("".join(t.replace("\n", " ").replace("\r", " ") + "\n" for t in texts))
  texts = [t.replace("\n", " ").replace("\r", " ") for t in texts]

  minilm = resources.minilm_dir()
  torch.manual_seed(0)
  hf_model = transformers.AutoModelForSequenceClassification.from_pretrained(
      minilm, num_labels=len(LABELS)).eval()
  hf_tokenizer = transformers.AutoTokenizer.from_pretrained(minilm)  # the fast (Rust) one
  exported = os.path.join(work, "export", "1")
  if not os.path.exists(exported):
    exported = _export_minilm(work, hf_model)
  python, loads, seconds = sys.executable, {}, {}

  # bertline score: the whole command, start-up included.
  out = os.path.join(work, "scored")
  seconds["bertline score"] = _timed(
      [python, "-m", "bertline", "score", "--model", exported, "--input", text_file,
       "--output", out, "--overwrite"], loads, "bertline score")
  with open(os.path.join(out, "summary.json")) as f:
    summary = json.load(f)
  assert summary["scored"] + summary["rejected"] == len(texts), summary

  # bertline predict over the same texts, preprocessed first (timed apart).
  data = os.path.join(work, "tsv")
  os.makedirs(data, exist_ok=True)
  with open(os.path.join(data, "train.tsv"), "w", encoding="utf-8") as f:
    f.write("".join(f"negative\t{t}\n" for t in texts))
  with open(os.path.join(data, "task.yaml"), "w") as f:
    f.write("name: bench\nlabels: [negative, neutral, positive]\n"
            "splits:\n  train: {file: train.tsv, text_a: 1, label: 0}\n")
  pre = os.path.join(work, "pre")
  seconds["preprocess (for predict)"] = _timed(
      [python, "-m", "bertline", "preprocess", "--task-config", os.path.join(data, "task.yaml"),
       "--data-dir", data, "--vocab-file", os.path.join(minilm, "vocab.txt"), "--max-seq-length",
       str(MAX_SEQ_LENGTH), "--output-dir", pre, "--splits", "train", "--overwrite"],
      loads, "preprocess")
  seconds["bertline predict"] = _timed(
      [python, "-m", "bertline", "predict", "--model", exported, "--data-dir", pre, "--split",
       "train", "--output", os.path.join(work, "predict.tsv")], loads, "bertline predict")

  # transformers: its best thread count on a sample, then every text.
  pipe = transformers.pipeline("text-classification", model=hf_model, tokenizer=hf_tokenizer,
                               device=-1, top_k=None, truncation=True, max_length=MAX_SEQ_LENGTH)
  sample = texts[:1000]
  trial = {}
  for threads in [int(t) for t in args.torch_threads.split(",")]:
    torch.set_num_threads(threads)
    started = time.perf_counter()
    with torch.inference_mode():
      pipe(sample, batch_size=32)
    trial[threads] = len(sample) / (time.perf_counter() - started)
  best_threads = max(trial, key=trial.get)
  torch.set_num_threads(best_threads)
  loads["transformers"] = load_average()
  started = time.perf_counter()
  with torch.inference_mode():
    hf = pipe(texts, batch_size=32)
  seconds["transformers pipeline"] = time.perf_counter() - started

  # Same model, so the same answers where both tokenize alike (most tweets).
  ours = []
  for name in summary["files"]:
    with open(os.path.join(out, name)) as f:
      ours += [json.loads(line) for line in f]
  ours_p = np.array([r["probabilities"] for r in ours[:500]])
  hf_p = np.array([[d["score"] for d in sorted(row, key=lambda d: d["label"])] for row in hf[:500]])
  agree = float((ours_p.argmax(-1) == hf_p.argmax(-1)).mean())

  rates = {k: len(texts) / v for k, v in seconds.items()}
  result = {
      "rows": len(texts), "machine": f"{platform.machine()}, {os.cpu_count()} cores",
      "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
      "python": platform.python_version(), "torch": torch.__version__,
      "transformers": transformers.__version__, "torch_threads_tried": trial,
      "torch_threads": best_threads, "seconds": seconds, "texts_per_s": rates,
      "score_vs_transformers": rates["bertline score"] / rates["transformers pipeline"],
      "score_vs_predict": rates["bertline score"] / rates["bertline predict"],
      "argmax_agreement_first_500": agree, "load_before": loads,
      "quiet": all(v < 1.0 for v in loads.values())}
  print(json.dumps(result, indent=2))
  if not result["quiet"]:
    print("NOT QUIET: a measurement started above load 1.0; do not publish these ratios.",
          file=sys.stderr)


if __name__ == "__main__":
  main()
