"""`bertline preprocess`: TSV corpus -> BERT features -> sharded TFRecords.

Shaped like Beam's wordcount: `run(argv)` splits bertline's arguments from the
pipeline's, and every step is labelled. The driver plans from file sizes only
(byte ranges; it reads no rows, so launching a Dataflow job costs the same for
any corpus), and the workers do the rest (see _run_pipeline): count each
range's lines (guids are line indices, as in run_classifier), then per shard
parse (rows that cannot be examples go to rejected/<split>.tsv with file, line
and reason), tokenize, pack and serialize in graph a batch at a time, and write
<split>-SSSSS-of-NNNNN.tfrecord[.gz].

Every run writes under its own <output>/run-<id>/, and metadata.json — the
one file later stages read, listing the run's files — is written last and
atomically, so a directory with a metadata.json is a finished run.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
import time
import uuid
from typing import Dict, List, Optional, Tuple

import apache_beam as beam

from bertline import beam_runner, beam_shards, fileio, flags, line_shards, schema
from bertline.preprocessing import processors
from bertline.preprocessing.config import DEFAULT_SPLITS, PreprocessConfig

log = logging.getLogger("bertline.preprocess")



def build_parser() -> flags.ArgumentParser:
  return flags.config_parser(
      PreprocessConfig, "bertline preprocess",
      description="Tokenize a TSV corpus exactly as google-research/bert does and write sharded "
      "TFRecords plus metadata.json.\n\nOther options go to Apache Beam, which must declare "
      "them (e.g. --runner DataflowRunner --project P --region R --temp_location gs://...); a "
      "flag neither has is refused.",
      epilog="built-in tasks: " + ", ".join(processors.BUILTIN_TASKS) +
      ".\n\nexample:\n  bertline preprocess --task mrpc --data-dir glue/MRPC --vocab-file "
      "vocab.txt --max-seq-length 128 --output-dir work/mrpc")


def config_from_args(argv: Optional[List[str]] = None) -> PreprocessConfig:
  """The config of a command line: preprocess's flags, and Beam's options as beam_args."""
  parser = build_parser()
  args, beam_args = parser.parse_known_args(argv)
  # A misspelled flag is refused as such, before a required flag it meant is missed.
  beam_runner.check_args(beam_args, parser.flag_names())
  return flags.config_from_flags(PreprocessConfig, args, parser, beam_args=beam_args)


def _train_labels(task: processors.TaskSpec, split: str, r: line_shards.ByteRange) -> List[str]:
  """The labels of the train split's rows in one range: what LineShards gathers to infer them."""
  return sorted(processors.labels_in(task, split, r)) if split == "train" else []


# Built once per worker process, whichever DoFn instance asks (see EncodeShardFn.setup).
# Locally the workers are threads of one process: the lock makes them build each once.
_TOKENIZERS: Dict[Tuple[str, bool], object] = {}
_ENCODERS: Dict[Tuple[str, bool, int, bool], object] = {}
_BUILD_LOCK = threading.Lock()


class EncodeShardFn(beam.DoFn):
  """Turns a ShardTask's lines into one TFRecord shard, its rejected rows and its counts.

  Per line: parse (rows that cannot be examples are kept with file, line and
  reason), tokenize in batches with the graph tokenizer — the same module the
  exported model serves with — pack as convert_single_example does, and
  serialize a batch at a time. The worker writes its shard itself, to a
  temporary name renamed into place, so a retried or duplicated task leaves
  one whole shard; its counts go to _counts/ and its rejected rows to a part
  file, which the driver gathers. Nothing is grouped, so memory does not
  grow with the corpus, and only plain ParDos and GroupByKeys are used, so
  every Beam runner (Direct, Dask, Dataflow) runs the same graph.
  """

  def __init__(self, task: processors.TaskSpec, vocab_file: str, do_lower_case: bool,
               max_seq_length: int, batch_size: int, run_dir: str, compression: str,
               workers_own_process: bool = False):
    self._task = task
    self._workers_own_process = workers_own_process
    self._vocab_file = vocab_file
    self._do_lower_case = do_lower_case
    self._max_seq_length = max_seq_length
    self._batch_size = batch_size
    self._run_dir = run_dir
    self._compression = compression

  def setup(self):
    import tensorflow as tf  # a worker's: the driver, and --help, run without TensorFlow
    if self._workers_own_process:  # a worker process of the runner's (Dask, Dataflow, ...)
      single_threaded_ops()
    from bertline.preprocessing import tfexample, tokenization  # TensorFlow, as above
    self._tf, self._tfexample = tf, tfexample
    # Built once per process: the tokenizer's Unicode tables take a few seconds, and
    # some runners (Dask) call setup once per bundle.
    key = (self._vocab_file, self._do_lower_case)
    with _BUILD_LOCK:
      if key not in _TOKENIZERS:
        _TOKENIZERS[key] = tokenization.BertTokenizer(self._vocab_file, self._do_lower_case)
    self._tokenizer = _TOKENIZERS[key]

  def process(self, keyed):
    _, tasks = keyed
    for task in tasks:
      yield self._write_shard(task)

  def _write_shard(self, task: beam_shards.ShardTask) -> str:
    tf = self._tf
    spec = self._task.splits[task.group]
    label_ids = {label: i for i, label in enumerate(task.labels)}
    counts = dict.fromkeys(COUNT_KEYS, 0)
    rejected: List[bytes] = []
    seen = set()  # the labels of the examples written: a train split needs two
    path = fileio.join(self._run_dir, schema.shard_name(task.group, task.shard, task.num_shards,
                                                        self._compression))
    tmp = f"{path}.tmp-{uuid.uuid4().hex}"
    options = tf.io.TFRecordOptions(compression_type=schema.TF_COMPRESSION_TYPE[self._compression])
    with tf.io.TFRecordWriter(tmp, options) as writer:
      batch: List[processors.Example] = []
      for r, first_line in task.ranges:
        for index, line in enumerate(line_shards.read_range(r), start=first_line):
          row = processors.parse_row(self._task, task.group, spec, index, line, label_ids, r.path)
          if isinstance(row, processors.Rejected):
            counts["rejected"] += 1
            rejected.append(line_shards.rejected_row(row.file, row.line, row.reason, row.raw))
          elif row is not None:
            batch.append(row)
            seen.update(row.label if self._task.multi_label else (row.label,))
            if len(batch) >= self._batch_size:
              self._encode(batch, label_ids, counts, writer)
              batch = []
      if batch:
        self._encode(batch, label_ids, counts, writer)
    tf.io.gfile.rename(tmp, path, overwrite=True)
    line_shards.write_report(self._run_dir, schema.shard_name(task.group, task.shard,
                                                               task.num_shards),
                             dict(counts, labels=list(task.labels), labels_seen=sorted(seen)),
                             rejected)
    beam.metrics.Metrics.counter("bertline", f"{task.group}_written").inc(counts["written"])
    beam.metrics.Metrics.counter("bertline", f"{task.group}_rejected").inc(counts["rejected"])
    return path

  def _encode(self, batch: List[processors.Example], label_ids: Dict[str, int],
              counts: Dict[str, int], writer) -> None:
    tf = self._tf
    pair = batch[0].text_b is not None
    # Per process too: a tf.function traced again for every task (a fresh DoFn on Dask)
    # costs seconds, and every trace's graph stays in memory.
    multi = self._task.multi_label
    key = (self._vocab_file, self._do_lower_case, self._max_seq_length, pair, multi)
    with _BUILD_LOCK:
      if key not in _ENCODERS:
        _ENCODERS[key] = self._tfexample.make_record_encoder(
            self._tokenizer, self._max_seq_length, pair, multi_label=multi)
    inputs = [tf.constant([e.text_a for e in batch])]
    if pair:
      inputs.append(tf.constant([e.text_b for e in batch]))
    if multi:  # a multi-hot vector over the task's labels
      hot = [[0] * len(label_ids) for _ in batch]
      for row, e in zip(hot, batch):
        for label in e.label:
          row[label_ids[label]] = 1
      inputs.append(tf.constant(hot, tf.int64, shape=[len(batch), len(label_ids)]))
    else:
      inputs.append(tf.constant([label_ids[e.label] for e in batch], tf.int64))
    inputs.append(tf.constant([e.guid for e in batch]))
    # Tokenizing, packing and serializing all run in the graph, outside the GIL, so
    # the worker threads share little more than this loop and the writes.
    records = _ENCODERS[key](*inputs).numpy()
    counts["written"] += len(batch)
    counts["invalid_utf8"] += sum(
        1 for e in batch if not _is_utf8(e.text_a) or (e.text_b is not None and not _is_utf8(e.text_b)))
    # Kept as [CLS] [SEP] (run_classifier does), but counted: usually a data problem.
    counts["empty_text"] += sum(
        1 for e in batch if not e.text_a.strip() or (e.text_b is not None and not e.text_b.strip()))
    for record in records:
      writer.write(record)


COUNT_KEYS = ("written", "rejected", "invalid_utf8", "empty_text")


def _is_utf8(data: bytes) -> bool:
  if data.isascii():  # most text, and a check far cheaper than decoding
    return True
  try:
    data.decode("utf-8")
    return True
  except UnicodeDecodeError:
    return False


def _validate(args: PreprocessConfig, task: processors.TaskSpec) -> List[str]:
  """Checks the files before a worker starts (the config checked its values); returns the splits."""
  fileio.check_credentials(args.data_dir, args.output_dir, args.vocab_file)
  if args.max_seq_length > 512:
    log.warning("--max-seq-length %d exceeds the 512 positions Google's BERT models were trained "
                "with; training will refuse it unless the model has more.", args.max_seq_length)
  if not fileio.exists(args.vocab_file):
    raise FileNotFoundError(f"--vocab-file {args.vocab_file} not found; it is the vocab.txt "
                            "shipped with the checkpoint you will fine-tune.")
  requested = args.split_names()
  default = args.splits == DEFAULT_SPLITS
  splits = []
  for split in requested:
    if split not in task.splits:
      if default:
        continue
      raise ValueError(f"task {task.name!r} has no split {split!r}; it has "
                       f"{', '.join(task.splits)}. Fix --splits.")
    path = fileio.join(args.data_dir, task.splits[split].file)
    if not fileio.exists(path):
      if default and split == "test":
        log.warning("No test split (%s); skipping it.", path)
        continue
      expected = ", ".join(f"{s}: {spec.file}" for s, spec in task.splits.items())
      raise FileNotFoundError(f"{path} not found. Task {task.name!r} expects, under --data-dir "
                              f"{args.data_dir}: {expected}.")
    fileio.check_regular_file(path, f"{split} file")
    _check_line_endings(path)
    splits.append(split)
  if not splits:
    raise ValueError("nothing to do: no requested split exists. Fix --splits or --data-dir.")
  _check_output(args)
  _check_casing(args.vocab_file, args.do_lower_case)
  return splits


def _check_output(args) -> None:
  metadata_path = fileio.join(args.output_dir, schema.METADATA_FILE)
  if fileio.exists(metadata_path) and not args.overwrite:
    raise FileExistsError(f"{metadata_path} exists: {args.output_dir} holds a finished run. "
                          "Choose another --output-dir or pass --overwrite.")


_HEAD_BYTES = 1 << 16


def _head(path: str) -> bytes:
  with fileio.open_read(path) as f:
    return f.read(_HEAD_BYTES)


def _check_line_endings(path: str) -> None:
  """A file with CR-only line ends (classic Mac) would read as one line: refuse it up front."""
  head = _head(path)
  if b"\r" in head and b"\n" not in head:
    raise ValueError(f"{path} uses CR-only line endings (classic Mac OS): its rows would be read "
                     f"as one line. Convert it first, e.g. tr '\\r' '\\n' < {path} > fixed.tsv")


def _has_rows(path: str, header: bool) -> bool:
  """Whether a split's file holds any line besides its header."""
  head = _head(path)
  lines = [line for line in head.split(b"\n") if line.strip(b"\r")]
  return len(lines) > (1 if header else 0) or len(head) == _HEAD_BYTES


def _remove_other_runs(output_dir: str, keep: str) -> None:
  """After publishing: earlier runs' directories (and the flat layout of older versions)."""
  legacy = re.compile(r"^[A-Za-z0-9_]+-\d{5}-of-\d{5}\.tfrecord(\.gz)?$")
  for name in fileio.listdir(output_dir):
    path = fileio.join(output_dir, name)
    if name.startswith(schema.RUN_DIR_PREFIX) and name != keep:
      log.info("Removing %s, an earlier run replaced by %s.", path, keep)
      fileio.rmtree(path)
    elif name in (schema.REJECTED_DIR, schema.COUNTS_DIR):
      fileio.rmtree(path)
    elif legacy.match(name):
      fileio.remove(path)


def _check_casing(vocab_file: str, do_lower_case: bool) -> None:
  from bertline.preprocessing.tokenization import load_vocab  # TensorFlow: after the flags
  vocab = load_vocab(vocab_file)
  cased = sum(1 for t in vocab[:30000] if t[:1].isupper() and not t.startswith("["))
  if do_lower_case and cased > 100:
    log.warning("%s holds %d capitalised tokens (a cased vocab) but --do-lower-case is on: "
                "capitalised tokens will never match. Pass --no-do-lower-case for cased models.",
                vocab_file, cased)


def single_threaded_ops() -> bool:
  """Gives TensorFlow one intra-op thread in this process, unless it has started already.

  The job runs a worker thread (or process) per core, each calling the
  tokenizer graph. With TensorFlow's default pool of a thread per core behind
  every call, the calls' small ops fight over the same cores and spin waiting
  for each other: one intra-op thread made the encoding about 30% faster on 2
  cores (BENCHMARKS.md). Only for a process that does nothing else: training
  in the same process needs the pool for its matrix products.

  Returns:
    Whether the setting took (False: TensorFlow was already initialised here).
  """
  import tensorflow as tf  # only once the job is known to run, not for --help
  try:
    tf.config.threading.set_intra_op_parallelism_threads(1)
  except RuntimeError:  # "cannot be modified after initialization": keep the pool it has
    log.debug("TensorFlow already started in this process; its intra-op pool stays as it is")
    return False
  return True


def run(config: PreprocessConfig, save_main_session: bool = True,
        own_process: bool = False) -> schema.DataMetadata:
  """Builds and runs the preprocess pipeline; returns the metadata it wrote.

  Args:
    config: the settings (config_from_args reads them from a command line).
    save_main_session: pickle the main session for remote workers.
    own_process: this process runs the job and nothing after it (the CLI, a
      pipeline component's container), so TensorFlow's threads are set for
      encoding alone (single_threaded_ops). `bertline run` trains next in the
      same process, and leaves them.
  """
  args, pipeline_args = config, config.beam_args
  beam_runner.check_args(pipeline_args, flags.flag_names(PreprocessConfig))  # before any work
  if own_process:
    single_threaded_ops()
  task = processors.get_task(args.task, args.task_config)
  splits = _validate(args, task)
  if not task.labels:
    processors.require_train_labels(task)
    if "train" not in splits:
      raise ValueError(f"task {task.name!r} declares no `labels`, so they are inferred from the "
                       "train split: add train to --splits, or declare `labels: [...]`.")
  log.info("Task %s, labels %s, splits %s", task.name,
           task.labels or "inferred from train", splits)

  beam_runner.pipeline_options(pipeline_args, save_main_session)  # bad Beam flags fail here
  # A second `bertline preprocess` into the same local directory is refused at once.
  with fileio.output_claim(args.output_dir, ".bertline-preprocess.lock",
                           f"another `bertline preprocess` is writing to {args.output_dir}; wait "
                           "for it, or choose another --output-dir"):
    _check_output(args)  # again, now that no one else can be writing
    run_name = f"{schema.RUN_DIR_PREFIX}{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"
    run_dir = fileio.join(args.output_dir, run_name)
    try:
      metadata = _run_pipeline(args, task, splits, pipeline_args, save_main_session, run_dir,
                               run_name)
    except BaseException:
      fileio.rmtree(run_dir)  # nothing of a failed run stays, and nothing was published
      raise
    _remove_other_runs(args.output_dir, keep=run_name)
  return metadata


def _plan(args, task: processors.TaskSpec, splits: List[str]):
  """Ranges and shard counts per split, from file sizes only: the driver reads no rows."""
  ranges, num_shards = {}, {}
  for split in splits:
    path = fileio.join(args.data_dir, task.splits[split].file)
    ranges[split] = line_shards.plan_ranges(path, fileio.size(path), args.chunk_bytes,
                                            min_ranges=args.num_shards or 1)
    num_shards[split] = args.num_shards or len(ranges[split])
    log.info("%s: %s in %d range(s), %d shard(s)", split, path, len(ranges[split]),
             num_shards[split])
  return ranges, num_shards


def _run_pipeline(args, task: processors.TaskSpec, splits: List[str], pipeline_args: List[str],
                  save_main_session: bool, run_dir: str, run_name: str) -> schema.DataMetadata:
  """Runs the Beam job into `run_dir`, then publishes metadata.json naming its files.

  The graph, one chain for every split: Shards (bertline/beam_shards.py: each
  range's line count, and the train labels when inferred; first line indices,
  labels, one task per shard, spread over the workers) -> EncodeShard (writes
  the shard, its rejected rows and counts). It uses only Create, ParDo and GroupByKey, so
  the Dask runner — which computes only a pipeline's last step and does not
  separate tagged outputs — runs exactly what the DirectRunner runs.
  """
  ranges, num_shards = _plan(args, task, splits)
  # Locally one process, a worker thread per core: the tokenizer graph releases the
  # GIL, and a process per core would hold a TensorFlow (~0.9 GiB) and start up each.
  # No more workers than shards: a small corpus runs in one thread.
  options = beam_runner.pipeline_options(pipeline_args, save_main_session,
                                         local_mode="multi_threading",
                                         local_work_units=sum(num_shards.values()))
  started = time.time()
  fileio.makedirs(run_dir)
  with beam_runner.session(options) as runner:
    p = beam.Pipeline(runner=runner, options=options)
    _ = (
        p
        | "Shards" >> beam_shards.LineShards(
            ranges, num_shards, labels=task.labels or None,
            gather=None if task.labels else functools.partial(_train_labels, task))
        | "EncodeShard" >> beam.ParDo(EncodeShardFn(
            task, args.vocab_file, args.do_lower_case, args.max_seq_length, args.batch_size,
            run_dir, args.compression,
            workers_own_process=not beam_runner.runs_in_this_process(options))))
    beam_runner.run(p)

  labels: Optional[List[str]] = None
  split_info: Dict[str, schema.SplitInfo] = {}
  for split in splits:
    split_info[split], labels = _gather_split(args, task, split, num_shards[split], run_dir,
                                              run_name)
  fileio.rmtree(fileio.join(run_dir, schema.REJECTED_PARTS_DIR))
  fileio.rmtree(fileio.join(run_dir, schema.COUNTS_DIR))

  from bertline.preprocessing.tokenization import load_vocab  # TensorFlow: after the flags
  metadata = schema.DataMetadata(
      task=task.name, labels=labels, splits=split_info, max_seq_length=args.max_seq_length,
      do_lower_case=args.do_lower_case, vocab_sha256=fileio.sha256_file(args.vocab_file),
      vocab_size=len(load_vocab(args.vocab_file)), compression=args.compression,
      has_text_b=task.has_text_b, multi_label=task.multi_label)
  path = metadata.write(args.output_dir)  # the publish: readers see the old run or this one
  log.info("Wrote %s in %.1fs", path, time.time() - started)
  return metadata


def _gather_split(args, task: processors.TaskSpec, split: str, num_shards: int, run_dir: str,
                  run_name: str):
  """A split's shards' reports -> (its SplitInfo, the labels); its rejected rows in one file.

  A split whose rows yielded no example is an error, never an empty dataset.
  """
  names = [schema.shard_name(split, i, num_shards) for i in range(num_shards)]
  reports = line_shards.read_counts(run_dir, names, "preprocess")
  counts = {key: sum(r[key] for r in reports) for key in COUNT_KEYS}
  labels = reports[-1]["labels"]
  path = fileio.join(args.data_dir, task.splits[split].file)
  if not labels:
    raise processors.no_labels_error(task, fileio.join(args.data_dir, task.splits["train"].file))
  rejected_file = f"{run_name}/{schema.REJECTED_DIR}/{split}.tsv"
  rejected_path = fileio.join(args.output_dir, rejected_file)
  line_shards.gather_rejected(run_dir, names, rejected_path)
  seen = sorted(set().union(*(r.get("labels_seen", []) for r in reports)))
  if split == "train" and len(seen) == 1:
    raise ValueError(
        f"{path}: every one of its {counts['written']} examples has label {seen[0]!r}: a "
        "classifier learns nothing from one label (it would score 1.0 on data like it). Check "
        "the task's label column, or add rows of the other labels.")
  if not counts["written"] and _has_rows(path, task.splits[split].header):
    raise ValueError(
        f"{path}: not one example was written from its rows ({counts['rejected']} rejected"
        + (f", see {rejected_path}" if counts["rejected"]
           else "; check the task's columns, header and filter")
        + "). Fix the file or the task YAML.")
  files = [f"{run_name}/{schema.shard_name(split, i, num_shards, args.compression)}"
           for i in range(num_shards)]
  log.info("%s: %d examples written, %d rows rejected%s, %d with invalid UTF-8 bytes dropped",
           split, counts["written"], counts["rejected"],
           f" (see {rejected_path})" if counts["rejected"] else "", counts["invalid_utf8"])
  if counts["empty_text"]:
    log.warning("%s: %d examples have an empty or whitespace-only text; kept as [CLS] [SEP] "
                "as run_classifier does (num_empty_text in metadata.json).", split,
                counts["empty_text"])
  info = schema.SplitInfo(
      file_pattern=f"{run_name}/{schema.shard_glob(split, args.compression)}",
      num_examples=counts["written"], num_rejected=counts["rejected"],
      rejected_file=rejected_file, num_invalid_utf8=counts["invalid_utf8"],
      num_empty_text=counts["empty_text"], files=files)
  return info, labels


def main(argv: List[str]) -> int:
  metadata = run(config_from_args(argv), own_process=True)
  total = sum(s.num_examples for s in metadata.splits.values())
  print(f"preprocess: {total} examples in {len(metadata.splits)} split(s); labels {metadata.labels}")
  return 0
