"""`bertline preprocess`: TSV corpus -> BERT features -> sharded TFRecords.

Shaped like Beam's wordcount: `run(argv)` splits bertline's arguments from the
pipeline's, and every step is labelled. Per split:

  Chunks (the driver cuts the file at line ends, counting lines: guids are
    line indices, as in run_classifier) -> Reshuffle (spreads the chunks)
  -> Encode (EncodeChunkFn: parse; rows that cannot be examples go to
    rejected/<split>.tsv with a reason; tokenize and pack in graph, a batch at
    a time; serialize tf.Examples) -> Write <split>-SSSSS-of-NNNNN.tfrecord[.gz]

Counts are written by the pipeline itself, and metadata.json — the one file
later stages read — is written last and atomically, so a directory with a
metadata.json is a finished run.
"""

from __future__ import annotations

import argparse
import json
import logging
import contextlib
import os
import shutil
import time
import uuid
from typing import Dict, Iterable, List, Optional

import apache_beam as beam
import numpy as np
from apache_beam.options.pipeline_options import PipelineOptions, SetupOptions

from bertline import fileio, schema
from bertline.preprocessing import local_runner, processors

log = logging.getLogger("bertline.preprocess")

REJECTED_TAG = "rejected"
COUNTS_TAG = "counts"


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog="bertline preprocess",
      description="Tokenize a TSV corpus exactly as google-research/bert does and write sharded "
      "TFRecords plus metadata.json. Unrecognised options go to Apache Beam "
      "(e.g. --runner DataflowRunner --project P --region R --temp_location gs://...).",
      epilog="built-in tasks: " + ", ".join(processors.BUILTIN_TASKS) +
      ". Example: bertline preprocess --task mrpc --data-dir glue/MRPC --vocab-file vocab.txt "
      "--do-lower-case --max-seq-length 128 --output-dir work/mrpc")
  parser.add_argument("--task", help="built-in task name (see below)")
  parser.add_argument("--task-config", help="YAML file describing a custom TSV task "
                      "(see examples/tasks/); replaces --task")
  parser.add_argument("--data-dir", required=True, help="directory holding the task's TSV files")
  parser.add_argument("--vocab-file", required=True, help="BERT vocab.txt of the model to train")
  parser.add_argument("--do-lower-case", action=argparse.BooleanOptionalAction, default=True,
                      help="lower-case and strip accents (uncased models; default); "
                      "--no-do-lower-case for cased and Chinese-cased models")
  parser.add_argument("--max-seq-length", type=int, default=128,
                      help="tokens per example incl. [CLS]/[SEP]; longer inputs are truncated "
                      "as run_classifier does (default 128)")
  parser.add_argument("--output-dir", required=True, help="where TFRecords and metadata.json go")
  parser.add_argument("--splits", default="train,dev,test",
                      help="comma-separated splits to process (default train,dev,test; splits "
                      "the task lacks are skipped when left at the default)")
  parser.add_argument("--num-shards", type=int, default=0,
                      help="shards per split (default 0: let the runner decide; 1 locally)")
  parser.add_argument("--compression", choices=sorted(schema.COMPRESSION_SUFFIX), default="none",
                      help="TFRecord compression (default none)")
  parser.add_argument("--batch-size", type=int, default=1024,
                      help="texts tokenized per graph call (default 1024; larger batches amortise the "
                      "per-call overhead, measured in benchmarks/preprocess.py)")
  parser.add_argument("--chunk-bytes", type=int, default=processors.DEFAULT_CHUNK_BYTES,
                      help="bytes of input a worker tokenizes as one unit (default 1 MiB); "
                      "smaller spreads a small corpus over more workers")
  parser.add_argument("--overwrite", action="store_true",
                      help="replace a finished output in --output-dir (refused by default)")
  return parser


class EncodeChunkFn(beam.DoFn):
  """Turns a chunk of a split's TSV file into serialized tf.Examples.

  Per chunk: parse every line (rows that cannot be examples go to the
  `rejected` output with file, line and reason), tokenize the texts in
  batches with the graph tokenizer — the same module the exported model
  serves with — pack them as convert_single_example does, and serialize the
  records a batch at a time. Working on chunks of lines rather than on single
  lines keeps Beam's per-element overhead off the hot path, and nothing is
  grouped, so memory does not grow with the corpus.

  Outputs: serialized records (main), Rejected rows (`rejected`) and one
  {written, rejected, invalid_utf8, empty_text} dict per chunk (`counts`).
  """

  def __init__(self, task: processors.TaskSpec, split: str, labels: List[str], vocab_file: str,
               do_lower_case: bool, max_seq_length: int, batch_size: int):
    self._task, self._split, self._labels = task, split, labels
    self._vocab_file = vocab_file
    self._do_lower_case = do_lower_case
    self._max_seq_length = max_seq_length
    self._batch_size = batch_size

  def setup(self):
    # Built once per worker: the tokenizer's Unicode tables take a few seconds.
    import tensorflow as tf
    from bertline.preprocessing import features, tfexample, tokenization
    self._tf, self._features, self._tfexample = tf, features, tfexample
    self._tokenizer = tokenization.BertTokenizer(self._vocab_file, self._do_lower_case)
    self._encoders = {}  # pair or not -> tf.function, traced on first use
    self._label_ids = {label: i for i, label in enumerate(self._labels)}
    self._label_set = set(self._labels)
    self._written = beam.metrics.Metrics.counter("bertline", f"{self._split}_written")
    self._rejected = beam.metrics.Metrics.counter("bertline", f"{self._split}_rejected")

  def process(self, chunk: processors.Chunk):
    spec = self._task.splits[self._split]
    counts = dict.fromkeys(COUNT_KEYS, 0)
    batch: List[processors.Example] = []
    for index, line in processors.read_chunk(chunk):
      row = processors.parse_row(self._task, self._split, spec, index, line, self._label_set,
                                 chunk.path)
      if isinstance(row, processors.Rejected):
        counts["rejected"] += 1
        self._rejected.inc()
        yield beam.pvalue.TaggedOutput(REJECTED_TAG, row)
      elif row is not None:
        batch.append(row)
        if len(batch) >= self._batch_size:
          yield from self._encode(batch, counts)
          batch = []
    if batch:
      yield from self._encode(batch, counts)
    yield beam.pvalue.TaggedOutput(COUNTS_TAG, counts)

  def _encode(self, batch: List[processors.Example], counts: Dict[str, int]):
    tf = self._tf
    pair = batch[0].text_b is not None
    if pair not in self._encoders:
      self._encoders[pair] = self._features.make_encoder(self._tokenizer, self._max_seq_length, pair)
    texts = [tf.constant([e.text_a for e in batch])]
    if pair:
      texts.append(tf.constant([e.text_b for e in batch]))
    ints = {k: v.numpy() for k, v in self._encoders[pair](*texts).items()}
    ints[schema.LABEL_IDS] = np.array([[self._label_ids[e.label]] for e in batch], np.int64)
    ints[schema.IS_REAL_EXAMPLE] = np.ones([len(batch), 1], np.int64)
    guids = [e.guid.encode("utf-8") for e in batch]
    counts["written"] += len(batch)
    counts["invalid_utf8"] += sum(
        1 for e in batch if not _is_utf8(e.text_a) or (e.text_b is not None and not _is_utf8(e.text_b)))
    # Kept as [CLS] [SEP] (run_classifier does), but counted: usually a data problem.
    counts["empty_text"] += sum(
        1 for e in batch if not e.text_a.strip() or (e.text_b is not None and not e.text_b.strip()))
    self._written.inc(len(batch))
    yield from self._tfexample.serialize_batch(ints, {schema.GUID: guids})


COUNT_KEYS = ("written", "rejected", "invalid_utf8", "empty_text")


def _sum_counts(counts: Iterable[Dict[str, int]]) -> Dict[str, int]:
  total = dict.fromkeys(COUNT_KEYS, 0)
  for c in counts:
    for k, v in c.items():
      total[k] += v
  return total


def _is_utf8(data: bytes) -> bool:
  try:
    data.decode("utf-8")
    return True
  except UnicodeDecodeError:
    return False


def _format_rejected(row: processors.Rejected) -> bytes:
  reason = row.reason.replace("\t", " ")
  return f"{row.file}\t{row.line}\t{reason}\t".encode("utf-8") + row.raw


def _validate(args, task: processors.TaskSpec) -> List[str]:
  """Checks everything that can be checked before a worker starts; returns the splits."""
  fileio.check_credentials(args.data_dir, args.output_dir, args.vocab_file)
  if args.max_seq_length < 3:
    raise ValueError(f"--max-seq-length {args.max_seq_length} is too small: [CLS] and [SEP] "
                     "need 2 positions (3 for pairs). Use e.g. 128.")
  if args.max_seq_length > 512:
    log.warning("--max-seq-length %d exceeds the 512 positions Google's BERT models were trained "
                "with; training will refuse it unless the model has more.", args.max_seq_length)
  if not fileio.exists(args.vocab_file):
    raise FileNotFoundError(f"--vocab-file {args.vocab_file} not found; it is the vocab.txt "
                            "shipped with the checkpoint you will fine-tune.")
  requested = [s.strip() for s in args.splits.split(",") if s.strip()]
  default = args.splits == build_parser().get_default("splits")
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


@contextlib.contextmanager
def _output_claim(output_dir: str):
  """An exclusive claim on a local output directory for the whole run.

  A second `bertline preprocess` into the same directory is refused at once
  instead of mixing its shards with the first's. (On gs:// no claim is taken:
  readers still read only the files metadata.json lists, so two writers can
  never be mixed, and the last to publish wins.)
  """
  if fileio.is_remote(output_dir):
    yield
    return
  os.makedirs(output_dir, exist_ok=True)
  with fileio.exclusive_claim(os.path.join(output_dir, ".bertline-preprocess.lock"),
                              f"another `bertline preprocess` is writing to {output_dir}; "
                              "wait for it, or choose another --output-dir"):
    yield


def _rmtree(path: str) -> None:
  if fileio.is_remote(path):
    import tensorflow as tf
    if tf.io.gfile.exists(path):
      tf.io.gfile.rmtree(path)
  else:
    shutil.rmtree(path, ignore_errors=True)


def _remove_other_runs(output_dir: str, keep: str) -> None:
  """After publishing: earlier runs' directories (and the flat layout of older versions)."""
  import re
  legacy = re.compile(r"^[A-Za-z0-9_]+-\d{5}-of-\d{5}\.tfrecord(\.gz)?$")
  for name in fileio.listdir(output_dir):
    path = fileio.join(output_dir, name)
    if name.startswith(schema.RUN_DIR_PREFIX) and name != keep:
      log.info("Removing %s, an earlier run replaced by %s.", path, keep)
      _rmtree(path)
    elif name in (schema.REJECTED_DIR, schema.COUNTS_DIR):
      _rmtree(path)
    elif legacy.match(name):
      if fileio.is_remote(path):
        import tensorflow as tf
        tf.io.gfile.remove(path)
      else:
        os.remove(path)


def _check_casing(vocab_file: str, do_lower_case: bool) -> None:
  from bertline.preprocessing.tokenization import load_vocab
  vocab = load_vocab(vocab_file)
  cased = sum(1 for t in vocab[:30000] if t[:1].isupper() and not t.startswith("["))
  if do_lower_case and cased > 100:
    log.warning("%s holds %d capitalised tokens (a cased vocab) but --do-lower-case is on: "
                "capitalised tokens will never match. Pass --no-do-lower-case for cased models.",
                vocab_file, cased)


def _pipeline_options(pipeline_args: List[str], save_main_session: bool) -> PipelineOptions:
  """Beam options; locally, one worker process per core (see local_runner)."""
  options = PipelineOptions(pipeline_args)
  options.view_as(SetupOptions).save_main_session = save_main_session
  return local_runner.configure(options, pipeline_args)


def run(argv: Optional[List[str]] = None, save_main_session: bool = True) -> schema.DataMetadata:
  """Builds and runs the preprocess pipeline; returns the metadata it wrote."""
  args, pipeline_args = build_parser().parse_known_args(argv)
  task = processors.get_task(args.task, args.task_config)
  splits = _validate(args, task)
  labels = processors.infer_labels(task, args.data_dir)
  log.info("Task %s, labels %s, splits %s", task.name, labels, splits)

  options = _pipeline_options(pipeline_args, save_main_session)
  with _output_claim(args.output_dir):
    _check_output(args)  # again, now that no one else can be writing
    run_name = f"{schema.RUN_DIR_PREFIX}{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"
    run_dir = fileio.join(args.output_dir, run_name)
    try:
      metadata = _run_pipeline(args, task, splits, labels, options, run_dir, run_name)
    except BaseException:
      _rmtree(run_dir)  # nothing of a failed run stays, and nothing was published
      raise
    _remove_other_runs(args.output_dir, keep=run_name)
  return metadata


def _run_pipeline(args, task: processors.TaskSpec, splits: List[str], labels: List[str],
                  options: PipelineOptions, run_dir: str, run_name: str) -> schema.DataMetadata:
  """Runs the Beam job into `run_dir`, then publishes metadata.json naming its files."""
  counts_dir = fileio.join(run_dir, schema.COUNTS_DIR)
  suffix = schema.shard_suffix(args.compression)
  started = time.time()
  # Locally: Beam's Python runner (no Prism download), its servers on loopback.
  local = local_runner.is_local(options)
  with (local_runner.loopback_servers() if local else contextlib.nullcontext()), \
       beam.Pipeline(runner=local_runner.runner_for(options), options=options) as p:
    for split in splits:
      path = fileio.join(args.data_dir, task.splits[split].file)
      chunks = processors.plan_chunks(path, args.chunk_bytes)
      log.info("%s: %s in %d chunk(s)", split, path, len(chunks))
      encoded = (
          p
          | f"{split}: Chunks" >> beam.Create(chunks)
          # Spreads the chunks over workers (the list of chunks is all that is grouped).
          | f"{split}: Reshuffle" >> beam.Reshuffle()
          | f"{split}: Encode" >> beam.ParDo(EncodeChunkFn(
              task, split, labels, args.vocab_file, args.do_lower_case, args.max_seq_length,
              args.batch_size)).with_outputs(REJECTED_TAG, COUNTS_TAG, main="records"))
      _ = (
          encoded.records
          | f"{split}: Write" >> beam.io.WriteToTFRecord(
              schema.shard_prefix(run_dir, split), file_name_suffix=suffix,
              num_shards=args.num_shards, shard_name_template=schema.SHARD_TEMPLATE,
              compression_type=args.compression if args.compression != "none" else "uncompressed"))
      _ = (
          encoded[REJECTED_TAG]
          | f"{split}: FormatRejected" >> beam.Map(_format_rejected)
          | f"{split}: WriteRejected" >> beam.io.WriteToText(
              fileio.join(run_dir, schema.REJECTED_DIR, split), file_name_suffix=".tsv",
              shard_name_template="", coder=beam.coders.BytesCoder(),
              header="file\tline\treason\traw_row"))
      _ = (
          encoded[COUNTS_TAG]
          | f"{split}: SumCounts" >> beam.CombineGlobally(_sum_counts)
          | f"{split}: CountsJson" >> beam.Map(json.dumps)
          | f"{split}: WriteCounts" >> beam.io.WriteToText(
              fileio.join(counts_dir, split), file_name_suffix=".json", shard_name_template=""))

  from bertline.preprocessing.tokenization import load_vocab
  split_info: Dict[str, schema.SplitInfo] = {}
  for split in splits:
    counts = json.loads(fileio.read_text(fileio.join(counts_dir, f"{split}.json")))
    rejected_file = f"{run_name}/{schema.REJECTED_DIR}/{split}.tsv"
    path = fileio.join(args.data_dir, task.splits[split].file)
    if not counts["written"] and _has_rows(path, task.splits[split].header):
      raise ValueError(
          f"{path}: not one example was written from its rows ({counts['rejected']} rejected"
          + (f", see {fileio.join(run_dir, schema.REJECTED_DIR, split + '.tsv')}"
             if counts["rejected"] else "; check the task's columns, header and filter")
          + "). Fix the file or the task YAML.")
    pattern = f"{run_name}/{schema.shard_glob(split, args.compression)}"
    files = sorted(os.path.relpath(f, args.output_dir) if not fileio.is_remote(f)
                   else f[len(args.output_dir.rstrip("/")) + 1:]
                   for f in fileio.glob(fileio.join(args.output_dir, pattern)))
    split_info[split] = schema.SplitInfo(
        file_pattern=pattern, num_examples=counts["written"], num_rejected=counts["rejected"],
        rejected_file=rejected_file, num_invalid_utf8=counts["invalid_utf8"],
        num_empty_text=counts["empty_text"], files=files)
    log.info("%s: %d examples written, %d rows rejected%s, %d with invalid UTF-8 bytes dropped",
             split, counts["written"], counts["rejected"],
             f" (see {fileio.join(args.output_dir, rejected_file)})" if counts["rejected"] else "",
             counts["invalid_utf8"])
    if counts["empty_text"]:
      log.warning("%s: %d examples have an empty or whitespace-only text; kept as [CLS] [SEP] "
                  "as run_classifier does (num_empty_text in metadata.json).", split,
                  counts["empty_text"])
  metadata = schema.DataMetadata(
      task=task.name, labels=labels, splits=split_info, max_seq_length=args.max_seq_length,
      do_lower_case=args.do_lower_case, vocab_sha256=fileio.sha256_file(args.vocab_file),
      vocab_size=len(load_vocab(args.vocab_file)), compression=args.compression,
      has_text_b=task.has_text_b)
  path = metadata.write(args.output_dir)  # the publish: readers see the old run or this one
  log.info("Wrote %s in %.1fs", path, time.time() - started)
  return metadata


def main(argv: List[str]) -> int:
  metadata = run(argv)
  total = sum(s.num_examples for s in metadata.splits.values())
  print(f"preprocess: {total} examples in {len(metadata.splits)} split(s); labels {metadata.labels}")
  return 0
