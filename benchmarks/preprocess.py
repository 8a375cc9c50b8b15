"""Preprocess throughput and memory: `bertline preprocess` vs run_classifier's own path.

Run: .venv/bin/python benchmarks/preprocess.py [--rows 100000] [--scale 10]
     [--runners direct,dask]

Both turn the same TSV corpus (real English tweets and Chinese reviews,
cycled to --rows lines) into TFRecords at max_seq_length 128 with the MiniLM
uncased vocab, in one run on one machine:

* reference: what run_classifier.py does — FullTokenizer +
  convert_single_example + tf.train.Example + TFRecordWriter, one process;
* bertline: the Beam job (`bertline preprocess`), on each of --runners:
  `direct` (the DirectRunner: one process, a worker thread per core) and
  `dask` (Beam's Dask runner on a local Dask cluster of a worker process per
  core, which bertline starts and stops).

Each runs in its own subprocess; RSS is sampled over the whole process tree
(both runners start worker processes): the peak of the tree's sum, and the
peak of every process on its own. The load average is recorded before every
measurement; a ratio taken above load 1.0 is flagged and must not be
published. With --scale K the Beam
job also runs on a corpus K times larger, to show whether its memory stays
flat as the data grows. The outputs are checked to hold the same features for
every guid, so a speed-up never hides a difference.
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
import threading
import time
from typing import Dict, List, Tuple

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from honest import quiet_load, verdict  # noqa: E402  (benchmarks/honest.py)

TASK_YAML = """\
name: bench
labels: [negative, neutral, positive]
splits:
  train: {file: train.tsv, header: true, text_a: 1, label: 0}
"""

# The reference path, run in a subprocess: run_classifier's
# file_based_convert_examples_to_features, with TF2's TFRecordWriter in place
# of TF1's tf.python_io (the only line that no longer runs as written).
REFERENCE = r"""
import sys, time, types
import tensorflow as tf
from absl import flags
flags.FLAGS(["bench"])
for name in ("bert.modeling", "bert.optimization"):
  sys.modules.setdefault(name, types.ModuleType(name))
from bert import run_classifier as rc, tokenization
tsv, vocab, out, seq = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
labels = ["negative", "neutral", "positive"]
tokenizer = tokenization.FullTokenizer(vocab, do_lower_case=True)
start = time.time()
n = 0
with open(tsv, "rb") as f, tf.io.TFRecordWriter(out) as writer:
  for index, line in enumerate(f):
    if index == 0:
      continue
    label, text = line.rstrip(b"\n").split(b"\t", 1)
    example = rc.InputExample(guid="train-%d" % index, text_a=tokenization.convert_to_unicode(text),
                              label=label.decode())
    # ex_index >= 5 skips the TF1 tf.logging calls of the first examples.
    feature = rc.convert_single_example(index + 5, example, labels, seq, tokenizer)
    feats = {
        "input_ids": feature.input_ids, "input_mask": feature.input_mask,
        "segment_ids": feature.segment_ids, "label_ids": [feature.label_id],
        "is_real_example": [int(feature.is_real_example)]}
    feats = {k: tf.train.Feature(int64_list=tf.train.Int64List(value=list(v)))
             for k, v in feats.items()}
    feats["guid"] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[example.guid.encode()]))
    writer.write(tf.train.Example(features=tf.train.Features(feature=feats)).SerializeToString())
    n += 1
print("EXAMPLES", n, "SECONDS", time.time() - start)
"""


def write_corpus(out_dir: str, rows: int) -> str:
  """`label<TAB>text` TSV of real tweets and Chinese reviews, cycled to `rows` lines."""
  from bertline import corpora
  os.makedirs(out_dir, exist_ok=True)
  tweets = corpora.read_tweets()
  reviews = [({"1": "positive", "0": "negative"}[label], text.encode("utf-8"))
             for label, text in corpora.read_chinese_reviews()]
  path = os.path.join(out_dir, "train.tsv")
  with open(path, "wb") as f:
    f.write(b"label\ttext\n")
    for label, text in itertools.islice(itertools.cycle(tweets + reviews), rows):
      f.write(label.encode() + b"\t" + text + b"\n")
  return path


def _tree_rss(root_pid: int) -> Dict[int, Tuple[str, int]]:
  """{pid: (command, resident bytes)} of a process and all its descendants, from /proc."""
  parents: Dict[int, int] = {}
  rss: Dict[int, int] = {}
  names: Dict[int, str] = {}
  page = os.sysconf("SC_PAGE_SIZE")
  for entry in os.listdir("/proc"):
    if not entry.isdigit():
      continue
    try:
      with open(f"/proc/{entry}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
      parents[int(entry)] = int(fields[1])
      rss[int(entry)] = int(fields[21]) * page
      with open(f"/proc/{entry}/cmdline", "rb") as f:
        names[int(entry)] = _describe(f.read().split(b"\0"))
    except (OSError, IndexError, ValueError):
      continue
  tree, frontier = {root_pid}, [root_pid]
  while frontier:
    pid = frontier.pop()
    for child, parent in parents.items():
      if parent == pid and child not in tree:
        tree.add(child)
        frontier.append(child)
  return {pid: (names.get(pid, "?"), rss[pid]) for pid in tree if pid in rss}


def _describe(argv: List[bytes]) -> str:
  """A short name for a process: what it runs, not its full command line."""
  words = [w.decode(errors="replace") for w in argv if w]
  text = " ".join(words)
  for marker, name in (("sdk_worker_main", "beam worker"), ("resource_tracker", "resource tracker"),
                       ("spawn_main", "dask worker"), ("forkserver", "forkserver"),
                       ("bertline", "bertline driver"), ("import tensorflow", "reference")):
    if marker in text:
      return name
  return os.path.basename(words[0]) if words else "?"


def run_measured(cmd: List[str]) -> Tuple[float, int, str, Dict[str, int]]:
  """Runs `cmd`; returns (wall seconds, peak tree RSS bytes, stdout, {process: peak RSS bytes})."""
  start = time.time()
  proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
  peak = [0]
  per_process: Dict[int, Tuple[str, int]] = {}
  done = threading.Event()

  def sample():
    while not done.is_set():
      tree = _tree_rss(proc.pid)
      peak[0] = max(peak[0], sum(r for _, r in tree.values()))
      for pid, (name, r) in tree.items():
        known, before = per_process.get(pid, (name, 0))
        # An exiting process has no command line left: keep the name seen while it ran.
        per_process[pid] = (known if known != "?" else name, max(r, before))
      done.wait(0.2)

  sampler = threading.Thread(target=sample, daemon=True)
  sampler.start()
  out, _ = proc.communicate()
  done.set()
  sampler.join()
  wall = time.time() - start
  if proc.returncode != 0:
    raise RuntimeError(f"{' '.join(cmd)} failed:\n{out[-3000:]}")
  peaks = {f"{name} {pid}": r for pid, (name, r) in sorted(per_process.items())}
  return wall, peak[0], out, peaks


# The 1-minute load average after the previous measurement's load decayed (honest.py).
load_average = quiet_load


def _mib(peaks: Dict[str, int]) -> Dict[str, int]:
  return {name: round(r / 2**20) for name, r in peaks.items() if r > 2**20}


def read_records(pattern: str) -> Dict[bytes, bytes]:
  import glob
  import tensorflow as tf
  out = {}
  for raw in tf.data.TFRecordDataset(sorted(glob.glob(pattern))):
    ex = tf.train.Example.FromString(raw.numpy())
    f = ex.features.feature
    guid = f["guid"].bytes_list.value[0]
    out[guid] = b"|".join(repr(list(f[k].int64_list.value)).encode() for k in
                          ("input_ids", "input_mask", "segment_ids", "label_ids",
                           "is_real_example"))
  return out


def main() -> None:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--rows", type=int, default=100_000)
  parser.add_argument("--scale", type=int, default=10,
                      help="also run bertline (first runner) on a corpus this many times larger "
                      "(0: skip)")
  parser.add_argument("--runners", default="direct",
                      help="comma-separated: direct, dask (default direct)")
  parser.add_argument("--max-seq-length", type=int, default=128)
  parser.add_argument("--work-dir", default=None, help="default: a temporary directory")
  parser.add_argument("--repeats", type=int, default=1,
                      help="run the reference and each runner this many times, alternating; "
                      "the best run counts, and the runs' spread decides publishability")
  args = parser.parse_args()
  runner_args = {"direct": [], "dask": ["--runner", "DaskRunner"]}
  runners = [r.strip() for r in args.runners.split(",") if r.strip()]
  unknown = set(runners) - set(runner_args)
  if unknown:
    parser.error(f"--runners: unknown {sorted(unknown)}; choose from {sorted(runner_args)}")

  from bertline import resources, schema
  vocab = os.path.join(resources.minilm_dir(), "vocab.txt")
  work = args.work_dir or tempfile.mkdtemp(prefix="bertline-bench-")
  os.makedirs(work, exist_ok=True)
  task = os.path.join(work, "task.yaml")
  with open(task, "w") as f:
    f.write(TASK_YAML)
  python = sys.executable
  loads = {}

  def bertline(rows: int, name: str, runner: str, repeat: int = 0):
    data = os.path.join(work, f"corpus-{name}")
    if not os.path.exists(os.path.join(data, "train.tsv")):
      write_corpus(data, rows)
    loads[f"{runner} {name}" + (f" run {repeat + 1}" if repeat else "")] = load_average()
    return run_measured(
        [python, "-m", "bertline", "preprocess", "--task-config", task, "--data-dir", data,
         "--vocab-file", vocab, "--max-seq-length", str(args.max_seq_length),
         "--output-dir", os.path.join(work, f"out-{runner}-{name}"), "--splits", "train",
         "--overwrite", *runner_args[runner]])

  print(f"corpus: {args.rows:,} rows in {work}", flush=True)
  data = os.path.join(work, "corpus-1x")
  tsv = write_corpus(data, args.rows)
  ref_out = os.path.join(work, "reference.tfrecord")
  # (wall s, peak tree RSS, stdout, per-process peaks) of every run, per contender.
  runs: Dict[str, list] = {"reference": [], **{runner: [] for runner in runners}}
  for repeat in range(args.repeats):  # alternating: a slower stretch never falls on one side only
    loads["reference" + (f" run {repeat + 1}" if repeat else "")] = load_average()
    runs["reference"].append(run_measured(
        [python, "-c", REFERENCE, tsv, vocab, ref_out, str(args.max_seq_length)]))
    for runner in runners:
      runs[runner].append(bertline(args.rows, "1x", runner, repeat))
    for name in runs:
      wall, rss = runs[name][-1][:2]
      print(f"{name}: {args.rows / wall:,.0f} examples/s, {wall:.1f}s, peak RSS "
            f"{rss / 2**20:,.0f} MiB", flush=True)
  rates = {name: [args.rows / r[0] for r in rs] for name, rs in runs.items()}
  # The best run counts for speed; memory is the highest of all runs.
  ref_wall = min(r[0] for r in runs["reference"])
  ref_rss = max(r[1] for r in runs["reference"])
  ref = read_records(ref_out)
  result = {
      "rows": args.rows, "machine": f"{platform.machine()}, {os.cpu_count()} cores",
      "python": platform.python_version(), "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
      "reference_examples_per_s": args.rows / ref_wall, "reference_peak_rss_mib": ref_rss / 2**20}
  failed = False
  for runner in runners:
    wall = min(r[0] for r in runs[runner])
    rss = max(r[1] for r in runs[runner])
    peaks = max(runs[runner], key=lambda r: r[1])[3]
    out = os.path.join(work, f"out-{runner}-1x")  # the shards metadata.json lists
    ours = read_records(os.path.join(out, schema.read_metadata(out).splits["train"].file_pattern))
    differing = sum(1 for guid, feats in ref.items() if ours.get(guid) != feats)
    failed |= bool(differing) or len(ref) != len(ours)
    print(f"bertline {runner}: {args.rows / wall:,.0f} examples/s, {wall:.1f}s, tree peak RSS "
          f"{rss / 2**20:,.0f} MiB (load before: {loads[f'{runner} 1x']:.2f}); examples "
          f"{len(ours):,} vs reference {len(ref):,}, differing {differing}", flush=True)
    print(f"  per-process peak RSS (MiB): {_mib(peaks)}", flush=True)
    result[runner] = {"examples_per_s": args.rows / wall, "seconds": wall,
                      "speedup": ref_wall / wall, "tree_peak_rss_mib": rss / 2**20,
                      "process_peak_rss_mib": _mib(peaks), "differing_examples": differing,
                      "load_before": loads[f"{runner} 1x"], "rates": rates[runner]}
  if args.scale and runners:
    runner = runners[0]
    wall, rss, _, peaks = bertline(args.rows * args.scale, f"{args.scale}x", runner)
    print(f"bertline {runner} x{args.scale}: {args.rows * args.scale / wall:,.0f} examples/s, "
          f"{wall:.1f}s, tree peak RSS {rss / 2**20:,.0f} MiB", flush=True)
    result[f"{runner}_x{args.scale}"] = {"examples_per_s": args.rows * args.scale / wall,
                                         "tree_peak_rss_mib": rss / 2**20,
                                         "process_peak_rss_mib": _mib(peaks)}
  result["load_before"] = loads
  result["rates"] = rates
  publishable, why = verdict(loads, rates if args.repeats > 1 else {})
  result["publishable"] = publishable and args.repeats > 1
  print(json.dumps(result, indent=2))
  print(why + ("" if args.repeats > 1 else "; one run, no spread measured: use --repeats 2 "
               "or more before publishing"))
  if failed:
    sys.exit("bertline's features differ from the reference's")


if __name__ == "__main__":
  main()
