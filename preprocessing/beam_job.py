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
import os
import time
from typing import Dict, Iterable, List, Optional

import apache_beam as beam
import numpy as np
from apache_beam.options.pipeline_options import (DirectOptions, PipelineOptions, SetupOptions,
                                                  StandardOptions)

from bertline import fileio, schema
from bertline.preprocessing import processors

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
  {written, rejected, invalid_utf8} dict per chunk (`counts`).
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
    counts = {"written": 0, "rejected": 0, "invalid_utf8": 0}
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
    self._written.inc(len(batch))
    yield from self._tfexample.serialize_batch(ints, {schema.GUID: guids})


def _sum_counts(counts: Iterable[Dict[str, int]]) -> Dict[str, int]:
  total = {"written": 0, "rejected": 0, "invalid_utf8": 0}
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
    splits.append(split)
  if not splits:
    raise ValueError("nothing to do: no requested split exists. Fix --splits or --data-dir.")
  metadata_path = fileio.join(args.output_dir, schema.METADATA_FILE)
  if fileio.exists(metadata_path) and not args.overwrite:
    raise FileExistsError(f"{metadata_path} exists: {args.output_dir} holds a finished run. "
                          "Choose another --output-dir or pass --overwrite.")
  _check_casing(args.vocab_file, args.do_lower_case)
  return splits


def _check_casing(vocab_file: str, do_lower_case: bool) -> None:
  from bertline.preprocessing.tokenization import load_vocab
  vocab = load_vocab(vocab_file)
  cased = sum(1 for t in vocab[:30000] if t[:1].isupper() and not t.startswith("["))
  if do_lower_case and cased > 100:
    log.warning("%s holds %d capitalised tokens (a cased vocab) but --do-lower-case is on: "
                "capitalised tokens will never match. Pass --no-do-lower-case for cased models.",
                vocab_file, cased)


def _pipeline_options(pipeline_args: List[str], save_main_session: bool) -> PipelineOptions:
  """Beam options; locally, DirectRunner runs one worker process per core.

  Beam's own DirectRunner default is a single in-process worker, which
  would leave all but one core idle; explicit --direct_* options win.
  """
  options = PipelineOptions(pipeline_args)
  options.view_as(SetupOptions).save_main_session = save_main_session
  runner = options.view_as(StandardOptions).runner
  if runner in (None, "DirectRunner", "direct"):
    direct = options.view_as(DirectOptions)
    given = " ".join(pipeline_args)
    if "--direct_num_workers" not in given:
      direct.direct_num_workers = os.cpu_count() or 1
    if "--direct_running_mode" not in given and direct.direct_num_workers > 1:
      direct.direct_running_mode = "multi_processing"
  return options


def run(argv: Optional[List[str]] = None, save_main_session: bool = True) -> schema.DataMetadata:
  """Builds and runs the preprocess pipeline; returns the metadata it wrote."""
  args, pipeline_args = build_parser().parse_known_args(argv)
  task = processors.get_task(args.task, args.task_config)
  splits = _validate(args, task)
  labels = processors.infer_labels(task, args.data_dir)
  log.info("Task %s, labels %s, splits %s", task.name, labels, splits)

  options = _pipeline_options(pipeline_args, save_main_session)
  counts_dir = fileio.join(args.output_dir, schema.COUNTS_DIR)
  suffix = schema.shard_suffix(args.compression)
  started = time.time()
  with beam.Pipeline(options=options) as p:
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
              schema.shard_prefix(args.output_dir, split), file_name_suffix=suffix,
              num_shards=args.num_shards, shard_name_template=schema.SHARD_TEMPLATE,
              compression_type=args.compression if args.compression != "none" else "uncompressed"))
      _ = (
          encoded[REJECTED_TAG]
          | f"{split}: FormatRejected" >> beam.Map(_format_rejected)
          | f"{split}: WriteRejected" >> beam.io.WriteToText(
              fileio.join(args.output_dir, schema.REJECTED_DIR, split), file_name_suffix=".tsv",
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
    split_info[split] = schema.SplitInfo(
        file_pattern=schema.shard_glob(split, args.compression),
        num_examples=counts["written"], num_rejected=counts["rejected"],
        rejected_file=f"{schema.REJECTED_DIR}/{split}.tsv",
        num_invalid_utf8=counts["invalid_utf8"])
    log.info("%s: %d examples written, %d rows rejected%s, %d with invalid UTF-8 bytes dropped",
             split, counts["written"], counts["rejected"],
             f" (see {fileio.join(args.output_dir, schema.REJECTED_DIR, split + '.tsv')})"
             if counts["rejected"] else "", counts["invalid_utf8"])
  metadata = schema.DataMetadata(
      task=task.name, labels=labels, splits=split_info, max_seq_length=args.max_seq_length,
      do_lower_case=args.do_lower_case, vocab_sha256=fileio.sha256_file(args.vocab_file),
      vocab_size=len(load_vocab(args.vocab_file)), compression=args.compression,
      has_text_b=task.has_text_b)
  path = metadata.write(args.output_dir)
  log.info("Wrote %s in %.1fs", path, time.time() - started)
  return metadata


def main(argv: List[str]) -> int:
  metadata = run(argv)
  total = sum(s.num_examples for s in metadata.splits.values())
  print(f"preprocess: {total} examples in {len(metadata.splits)} split(s); labels {metadata.labels}")
  return 0
