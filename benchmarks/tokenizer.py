"""Tokenizer throughput: bertline's graph tokenizer vs Hugging Face's Rust tokenizer and Google's.

Run: .venv/bin/python benchmarks/tokenizer.py [--lines N] [--batch-size B]
All tokenize the same real lines (English tweets + Chinese reviews) in one
run: google-research/bert's FullTokenizer (the reference for exactness),
transformers' BertTokenizerFast (the Rust `tokenizers`, batch encoding, no
special tokens; it spreads a batch over every core: its best setting here)
and bertline's BertTokenizer (graph ops, batches of --batch-size), called
from one thread and, as the preprocess job calls it, from a thread per core
(the graph releases the GIL; TensorFlow with one intra-op thread, as in a
`bertline preprocess` process). The ids are compared with Google's, so a
speed-up never hides a difference. The load average is recorded before each
timed phase and the verdict printed (benchmarks/honest.py).
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.dirname(__file__))


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--lines", type=int, default=40000)
  parser.add_argument("--batch-size", type=int, default=512)
  parser.add_argument("--repeats", type=int, default=3, help="best of N timed passes")
  parser.add_argument("--pass-seconds", type=float, default=8.0,
                      help="each pass tokenizes the lines again until this long has passed: "
                      "one second-long pass is at the mercy of one scheduler hiccup")
  args = parser.parse_args()

  import concurrent.futures

  import tensorflow as tf
  from absl import flags
  flags.FLAGS(["benchmark"])
  from bert import tokenization as reference

  from bertline import corpora, resources
  from bertline.preprocessing import beam_job, tokenization
  beam_job.single_threaded_ops()  # what `bertline preprocess` sets in its own process

  vocab = os.path.join(resources.minilm_dir(), "vocab.txt")
  lines = [t for _, t in corpora.read_tweets()]
  lines += [t.encode("utf-8") for _, t in corpora.read_chinese_reviews()]
  lines = lines[:args.lines]
  n_bytes = sum(len(line) for line in lines)

  import transformers
  fast = transformers.BertTokenizerFast(vocab, do_lower_case=True)
  texts = [line.decode("utf-8", "ignore") for line in lines]
  ref = reference.FullTokenizer(vocab, do_lower_case=True)
  ours = tokenization.BertTokenizer(vocab, do_lower_case=True)
  ours.tokenize(tf.constant(lines[:args.batch_size]))  # trace once

  def run_ref():
    return [ref.convert_tokens_to_ids(ref.tokenize(line)) for line in lines]

  def run_ours():
    out = []
    for i in range(0, len(lines), args.batch_size):
      out.extend(ours.tokenize(tf.constant(lines[i:i + args.batch_size])).to_list())
    return out

  batches = [lines[i:i + args.batch_size] for i in range(0, len(lines), args.batch_size)]
  pool = concurrent.futures.ThreadPoolExecutor(os.cpu_count() or 1)

  def run_ours_threads():
    out = []
    for ids in pool.map(lambda b: ours.tokenize(tf.constant(b)).to_list(), batches):
      out.extend(ids)
    return out

  def run_fast():
    out = []
    for i in range(0, len(texts), args.batch_size):
      out.extend(fast(texts[i:i + args.batch_size], add_special_tokens=False)["input_ids"])
    return out

  from honest import quiet_load, verdict
  contenders = (("google", run_ref), ("rust", run_fast), ("bertline", run_ours),
                 ("bertline threads", run_ours_threads))
  loads, rounds, results = {}, {name: [] for name, _ in contenders}, {}
  for _ in range(args.repeats):  # alternating passes
    for name, fn in contenders:
      loads[f"{name} pass {len(rounds[name]) + 1}"] = quiet_load(settle_s=30, quiet=1.0)
      start, n = time.perf_counter(), 0
      while not n or time.perf_counter() - start < args.pass_seconds:
        results[name] = fn()
        n += len(lines)
      rounds[name].append(n / (time.perf_counter() - start))
  ids_ref = results["google"]
  diff = {name: sum(a != b for a, b in zip(ids_ref, results[name]))
          for name in ("rust", "bertline", "bertline threads")}
  ok, why = verdict(loads, rounds)
  best = {name: max(r) for name, r in rounds.items()}
  print(f"machine: {platform.machine()} {os.cpu_count()} cores, python {platform.python_version()}, "
        f"tensorflow {tf.__version__}, transformers {transformers.__version__}")
  print(f"lines: {len(lines)} ({n_bytes / 1e6:.1f} MB), batch {args.batch_size}, best of "
        f"{args.repeats} alternating passes of at least {args.pass_seconds:g} s; loads "
        f"{[round(v, 2) for v in loads.values()]}")
  print("rounds (lines/s): " + "; ".join(
      f"{name} {', '.join(f'{r:.0f}' for r in rs)}" for name, rs in rounds.items()))
  print(f"Google FullTokenizer      : {best['google']:10.0f} lines/s")
  print(f"HF BertTokenizerFast (Rust): {best['rust']:10.0f} lines/s  ({diff['rust']} lines differ "
        "from Google's)")
  print(f"bertline BertTokenizer     : {best['bertline']:10.0f} lines/s  ({diff['bertline']} lines "
        "differ from Google's)")
  print(f"bertline, {os.cpu_count()} threads      : {best['bertline threads']:10.0f} lines/s  "
        f"({diff['bertline threads']} lines differ from Google's)")
  print(f"ratio bertline / Rust: {best['bertline'] / best['rust']:.2f}x (1 thread), "
        f"{best['bertline threads'] / best['rust']:.2f}x ({os.cpu_count()} threads); "
        f"bertline / Google: {best['bertline'] / best['google']:.2f}x")
  print(why)


if __name__ == "__main__":
  main()
