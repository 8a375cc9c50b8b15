"""Tokenizer throughput: bertline's graph tokenizer vs google-research/bert's FullTokenizer.

Run: .venv/bin/python benchmarks/tokenizer.py [--lines N] [--batch-size B]
Both tokenize the same real lines (English tweets + Chinese reviews) in one
run; the ids are also compared, so a speed-up never hides a difference.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--lines", type=int, default=40000)
  parser.add_argument("--batch-size", type=int, default=512)
  parser.add_argument("--repeats", type=int, default=3, help="best of N timed passes")
  args = parser.parse_args()

  import tensorflow as tf
  from absl import flags
  flags.FLAGS(["benchmark"])
  from bert import tokenization as reference

  from bertline import corpora, resources
  from bertline.preprocessing import tokenization

  vocab = os.path.join(resources.minilm_dir(), "vocab.txt")
  lines = [t for _, t in corpora.read_tweets()]
  lines += [t.encode("utf-8") for _, t in corpora.read_chinese_reviews()]
  lines = lines[:args.lines]
  n_bytes = sum(len(line) for line in lines)

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

  def best(fn):
    times, result = [], None
    for _ in range(args.repeats):
      start = time.perf_counter()
      result = fn()
      times.append(time.perf_counter() - start)
    return min(times), result

  t_ref, ids_ref = best(run_ref)
  t_ours, ids_ours = best(run_ours)
  mismatches = sum(a != b for a, b in zip(ids_ref, ids_ours))
  print(f"machine: {platform.machine()} {os.cpu_count()} cores, python {platform.python_version()}, "
        f"tensorflow {tf.__version__}")
  print(f"lines: {len(lines)} ({n_bytes / 1e6:.1f} MB), batch {args.batch_size}, best of {args.repeats}")
  print(f"reference FullTokenizer: {len(lines) / t_ref:10.0f} lines/s")
  print(f"bertline BertTokenizer : {len(lines) / t_ours:10.0f} lines/s")
  print(f"ratio (bertline / reference): {t_ref / t_ours:.2f}x; differing lines: {mismatches}")


if __name__ == "__main__":
  main()
