"""`bertline preprocess`: TSV corpus -> BERT features -> sharded TFRecords.

Shaped like Beam's wordcount: `run(argv)` splits bertline's arguments from the
pipeline's, and every step is labelled. Per split:

  Read (line numbers kept: guids are line indices, as in run_classifier)
  -> Parse (rows that cannot be examples go to rejected/<split>.tsv with a reason)
  -> Reshuffle -> Batch -> Tokenize and pack (the graph tokenizer, on batches)
  -> Serialize tf.Example -> Write <split>-SSSSS-of-NNNNN.tfrecord[.gz]

Counts are written by the pipeline itself, and metadata.json — the one file
later stages read — is written last and atomically, so a directory with a
metadata.json is a finished run.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from typing import Dict, Iterable, List, Optional, Tuple

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, SetupOptions

from bertline import fileio, schema
from bertline.preprocessing import processors

log = logging.getLogger("bertline.preprocess")

REJECTED_TAG = "rejected"


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
  parser.add_argument("--batch-size", type=int, default=256,
                      help="texts tokenized per graph call (default 256)")
  parser.add_argument("--overwrite", action="store_true",
                      help="replace a finished output in --output-dir (refused by default)")
  return parser


class ReadTsvLinesFn(beam.DoFn):
  """Reads one split's file, emitting (line index, raw line) pairs.

  A whole file is read by one worker because the reference's guids are line
  indices; the Reshuffle after parsing spreads the expensive tokenization.
  """

  def process(self, path: str) -> Iterable[Tuple[int, bytes]]:
    for index, line in enumerate(processors.iter_lines(path)):
      yield index, line


class ParseRowFn(beam.DoFn):
  """Turns a line into an Example, or a Rejected row on the `rejected` output."""

  def __init__(self, task: processors.TaskSpec, split: str, labels: List[str], path: str):
    self._task, self._split, self._labels, self._path = task, split, labels, path

  def setup(self):
    self._label_set = set(self._labels)

  def process(self, element):
    index, line = element
    row = processors.parse_row(self._task, self._split, self._task.splits[self._split], index,
                               line, self._label_set, self._path)
    if isinstance(row, processors.Rejected):
      beam.metrics.Metrics.counter("bertline", f"{self._split}_rejected").inc()
      yield beam.pvalue.TaggedOutput(REJECTED_TAG, row)
    elif row is not None:
      yield row


class TokenizeAndPackFn(beam.DoFn):
  """Tokenizes a batch of Examples in graph and emits serialized tf.Examples.

  Holds one BertTokenizer per worker (built in setup(): its tables take a few
  seconds), the same module the exported model serves with.
  """

  def __init__(self, vocab_file: str, do_lower_case: bool, max_seq_length: int,
               labels: List[str]):
    self._vocab_file = vocab_file
    self._do_lower_case = do_lower_case
    self._max_seq_length = max_seq_length
    self._labels = labels

  def setup(self):
    import tensorflow as tf
    from bertline.preprocessing import features, tokenization
    self._tf = tf
    self._features = features
    self._tokenizer = tokenization.BertTokenizer(self._vocab_file, self._do_lower_case)
    self._label_ids = {label: i for i, label in enumerate(self._labels)}

  def process(self, batch: List[processors.Example]):
    tf = self._tf
    tok = self._tokenizer
    ids_a = tok.tokenize(tf.constant([e.text_a for e in batch]))
    ids_b = None
    if batch[0].text_b is not None:
      ids_b = tok.tokenize(tf.constant([e.text_b for e in batch]))
    packed = self._features.pack_features(ids_a, ids_b, self._max_seq_length, tok.cls_id,
                                          tok.sep_id)
    packed = {k: v.numpy() for k, v in packed.items()}
    for i, example in enumerate(batch):
      feats = {name: _int64(packed[name][i]) for name in schema.SEQUENCE_FEATURES}
      feats[schema.LABEL_IDS] = _int64([self._label_ids[example.label]])
      feats[schema.IS_REAL_EXAMPLE] = _int64([1])
      feats[schema.GUID] = tf.train.Feature(
          bytes_list=tf.train.BytesList(value=[example.guid.encode("utf-8")]))
      invalid = not _is_utf8(example.text_a) or (
          example.text_b is not None and not _is_utf8(example.text_b))
      if invalid:
        beam.metrics.Metrics.counter("bertline", "invalid_utf8").inc()
      yield int(invalid), tf.train.Example(
          features=tf.train.Features(feature=feats)).SerializeToString()


def _int64(values):
  import tensorflow as tf
  return tf.train.Feature(int64_list=tf.train.Int64List(value=[int(v) for v in values]))


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


def run(argv: Optional[List[str]] = None, save_main_session: bool = True) -> schema.DataMetadata:
  """Builds and runs the preprocess pipeline; returns the metadata it wrote."""
  args, pipeline_args = build_parser().parse_known_args(argv)
  task = processors.get_task(args.task, args.task_config)
  splits = _validate(args, task)
  labels = processors.infer_labels(task, args.data_dir)
  log.info("Task %s, labels %s, splits %s", task.name, labels, splits)

  options = PipelineOptions(pipeline_args)
  options.view_as(SetupOptions).save_main_session = save_main_session
  counts_dir = fileio.join(args.output_dir, schema.COUNTS_DIR)
  suffix = schema.shard_suffix(args.compression)
  started = time.time()
  with beam.Pipeline(options=options) as p:
    for split in splits:
      path = fileio.join(args.data_dir, task.splits[split].file)
      parsed = (
          p
          | f"{split}: File" >> beam.Create([path])
          | f"{split}: Read" >> beam.ParDo(ReadTsvLinesFn())
          | f"{split}: Parse" >> beam.ParDo(ParseRowFn(task, split, labels, path)).with_outputs(
              REJECTED_TAG, main="examples"))
      encoded = (
          parsed.examples
          | f"{split}: Reshuffle" >> beam.Reshuffle()
          | f"{split}: Batch" >> beam.BatchElements(
              min_batch_size=min(32, args.batch_size), max_batch_size=args.batch_size)
          | f"{split}: Tokenize" >> beam.ParDo(TokenizeAndPackFn(
              args.vocab_file, args.do_lower_case, args.max_seq_length, labels)))
      _ = (
          encoded
          | f"{split}: Serialized" >> beam.Map(lambda kv: kv[1])
          | f"{split}: Write" >> beam.io.WriteToTFRecord(
              schema.shard_prefix(args.output_dir, split), file_name_suffix=suffix,
              num_shards=args.num_shards, shard_name_template=schema.SHARD_TEMPLATE,
              compression_type=args.compression if args.compression != "none" else "uncompressed"))
      _ = (
          parsed[REJECTED_TAG]
          | f"{split}: FormatRejected" >> beam.Map(_format_rejected)
          | f"{split}: WriteRejected" >> beam.io.WriteToText(
              fileio.join(args.output_dir, schema.REJECTED_DIR, split), file_name_suffix=".tsv",
              shard_name_template="", coder=beam.coders.BytesCoder(),
              header="file\tline\treason\traw_row"))
      written = encoded | f"{split}: CountWritten" >> beam.Map(lambda kv: ("written", 1))
      invalid = encoded | f"{split}: CountInvalid" >> beam.Map(lambda kv: ("invalid_utf8", kv[0]))
      rejected = parsed[REJECTED_TAG] | f"{split}: CountRejected" >> beam.Map(lambda r: ("rejected", 1))
      _ = (
          (written, invalid, rejected, p | f"{split}: Zero" >> beam.Create(
              [("written", 0), ("invalid_utf8", 0), ("rejected", 0)]))
          | f"{split}: AllCounts" >> beam.Flatten()
          | f"{split}: Sum" >> beam.CombinePerKey(sum)
          | f"{split}: Gather" >> beam.combiners.ToDict()
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
