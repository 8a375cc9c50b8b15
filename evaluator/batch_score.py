"""`bertline score`: a pushed model over millions of texts, on Beam's RunInference.

    bertline score --model registry/ --input 'gs://b/new/*.txt' --output gs://b/scored/2026-11-25

Writes OUTPUT/predictions-SSSSS-of-NNNNN.jsonl[.gz], one object per input row —
{"id", "label", "probabilities" (in the order of summary.json's labels),
"model_version"} — OUTPUT/rejected/rows.tsv (file, line, reason, raw row) and
OUTPUT/summary.json, written last: a directory with a summary.json is a
finished run, and every input row is in it, scored or rejected.

The model is an exported version (its serving_default signature tokenizes raw
text in the graph, so nothing here re-implements WordPiece) or a push target,
whose last pushed version is used. The graph, one chain every Beam runner
runs alike (see preprocessing/beam_job.py for why):

  Ranges -> CountLines -> GroupByKey (one element) -> PlanShards
  -> GroupByKey by shard (spreads the shards) -> ReadRows (parse; batches of
  --batch-size rows) -> RunInference (the model loaded once per worker
  process; batches prebatched, so the runner holds nothing back)
  -> GroupByKey by shard -> WriteShard (checks that every row the shard read
  came through, then writes it).
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import json
import logging
import os
import time
import uuid
from typing import Any, Dict, Iterable, List, NamedTuple, Sequence, Tuple

import apache_beam as beam
import numpy as np
from apache_beam.ml.inference.base import ModelHandler, PredictionResult, RunInference

from bertline import beam_runner, fileio, flags, line_shards, registry, schema
from bertline.evaluator import scoring
from bertline.evaluator.score_inputs import FORMATS, InputSpec, Row, expand_inputs, parse, tsv_columns

log = logging.getLogger("bertline.score")

SUMMARY_FILE = "summary.json"
PREDICTIONS_PREFIX = "predictions"
REJECTED_FILE = f"{schema.REJECTED_DIR}/rows.tsv"
COMPRESSIONS = ("none", "gzip")
TEMPORARY_PREFIX = "_temporary-"  # a run writes here, then moves its files into place
DEFAULT_BATCH_SIZE = 64


@dataclasses.dataclass(frozen=True)
class ScoreConfig:
  """A scoring job, validated once (`check`) before any worker starts.

  Attributes:
    model: an exported version directory, or a push target (its last pushed
      version), local or gs://.
    inputs: files, globs or gs:// patterns.
    output: the output directory.
    input_spec: how rows are read (score_inputs.InputSpec).
    compression: "none" or "gzip" for the predictions files.
    batch_size: rows per call of the model.
    chunk_bytes: input bytes per unit of work.
    num_shards: predictions files (0: one per --chunk-bytes range).
    overwrite: replace a finished scoring in `output`.
    beam_args: Beam pipeline options (--runner DaskRunner, DataflowRunner...).
  """

  model: str
  inputs: Tuple[str, ...]
  output: str
  input_spec: InputSpec = InputSpec()
  compression: str = "none"
  batch_size: int = DEFAULT_BATCH_SIZE
  chunk_bytes: int = line_shards.DEFAULT_CHUNK_BYTES
  num_shards: int = 0
  overwrite: bool = False
  beam_args: Tuple[str, ...] = ()

  def check(self) -> None:
    if not self.inputs:
      raise ValueError("--input: give at least one file or glob")
    if self.compression not in COMPRESSIONS:
      raise ValueError(f"--compression {self.compression!r}: choose one of {COMPRESSIONS}")
    for name in ("batch_size", "chunk_bytes"):
      if getattr(self, name) < 1:
        raise ValueError(f"--{name.replace('_', '-')} {getattr(self, name)}: must be positive")
    if self.num_shards < 0:
      raise ValueError(f"--num-shards {self.num_shards}: give 0 (one per input range) or more")


class ScoringModel(NamedTuple):
  """The version to score with and what its metadata says of it."""
  path: str
  version: str
  labels: List[str]
  has_text_b: bool


def resolve_model(model: str) -> ScoringModel:
  """An exported version directory, or the last pushed version under a push target."""
  path = model.rstrip("/")
  if not scoring.is_export(path):
    pushed = registry.latest_pushed(path)
    if not pushed:
      raise FileNotFoundError(
          f"--model {model}: neither an exported version (no saved_model.pb or "
          f"{schema.TFLITE_FILE}) nor a push target "
          "holding a complete pushed version. Give `bertline export`'s <export-dir>/<version> or "
          "`bertline push --to`'s directory.")
    log.info("Scoring with %s, the last pushed version under %s.", pushed, model)
    path = pushed
  metadata = registry.pushed_metadata(path)
  if not metadata.get("labels"):
    raise ValueError(f"{path}/assets/{schema.ASSET_METADATA} is missing or names no labels: "
                     "score needs a version written by `bertline export`.")
  return ScoringModel(path, os.path.basename(path), list(metadata["labels"]),
                      bool(metadata.get("has_text_b")))


# --- Beam transforms ---------------------------------------------------------------------------

class ShardTask(NamedTuple):
  shard: int
  num_shards: int
  ranges: Tuple[Tuple[line_shards.ByteRange, int], ...]


class Marker(NamedTuple):
  """Travels with a shard's rows: how many rows the shard read (none may be lost)."""
  shard: int
  rows: int


def _count_range(item):
  index, r = item
  yield None, (index, line_shards.count_lines(r))


class PlanShardsFn(beam.DoFn):
  """All ranges' line counts -> one ShardTask per output shard."""

  def __init__(self, ranges: List[line_shards.ByteRange], num_shards: int):
    self._ranges, self._num_shards = ranges, num_shards

  def process(self, keyed):
    lines = dict(keyed[1])
    counts = [lines[i] for i in range(len(self._ranges))]
    for shard, (part, _) in enumerate(line_shards.shard_tasks(self._ranges, counts,
                                                              self._num_shards)):
      yield shard, ShardTask(shard, self._num_shards, part)


class ReadRowsFn(beam.DoFn):
  """A shard's lines -> batches of Rows (each batch a list; the last ends with the Marker)."""

  def __init__(self, spec: InputSpec, columns: Dict[str, Dict[str, int]], pair: bool,
               batch_size: int):
    self._spec, self._columns, self._pair, self._batch_size = spec, columns, pair, batch_size

  def process(self, keyed):
    for task in keyed[1]:
      batch: List[Any] = []
      rows = 0
      for r, first in task.ranges:
        for line, raw in enumerate(line_shards.read_range(r), start=first + 1):
          row = parse(self._spec, self._columns.get(r.path), r.path, line, raw, self._pair)
          if row is None:
            continue
          batch.append((task.shard, row))
          rows += 1
          if len(batch) >= self._batch_size:
            yield batch
            batch = []
      batch.append((task.shard, Marker(task.shard, rows)))
      yield batch


class _Loaded:
  """A loaded version and its serving_default (an object: Beam's Shared holds a weak reference)."""

  def __init__(self, loaded, signature):
    self.loaded, self.signature = loaded, signature


_MODELS: Dict[str, _Loaded] = {}


class RawTextModelHandler(ModelHandler):
  """RunInference's model: an exported version's serving_default, raw text in.

  The SavedModel is loaded once per process (some runners call setup for every
  bundle). Rejected rows and markers pass through unscored, in order.
  """

  def __init__(self, path: str, pair: bool):
    super().__init__()
    self._path, self._pair = path, pair

  def load_model(self):
    if self._path not in _MODELS:
      import tensorflow as tf
      import tensorflow_text  # noqa: F401  (registers the in-graph tokenizer's ops)
      from bertline.exporter import quantize
      if quantize.is_tflite(self._path):  # `export --quantize`: tokenizer/ + model.tflite
        loaded = quantize.TFLiteModel(self._path)
      else:
        loaded = tf.saved_model.load(self._path)
      _MODELS[self._path] = _Loaded(loaded, loaded.signatures[schema.SIGNATURE_TEXT])
    return _MODELS[self._path]

  def run_inference(self, batch: Sequence[Tuple[int, Any]], model, inference_args=None
                    ) -> Iterable[PredictionResult]:
    import tensorflow as tf
    signature = model.signature
    rows = [row for _, row in batch if isinstance(row, Row) and not row.reason]
    probabilities = []
    if rows:
      inputs = {schema.SERVING_TEXT_A: tf.constant([r.text_a for r in rows])}
      if self._pair:
        inputs[schema.SERVING_TEXT_B] = tf.constant([r.text_b for r in rows])
      probabilities = np.asarray(signature(**inputs)[schema.OUTPUT_PROBABILITIES])
    scored = iter(probabilities)
    for key, row in batch:
      value = next(scored) if isinstance(row, Row) and not row.reason else None
      yield PredictionResult((key, row), value)

  def get_num_bytes(self, batch) -> int:
    return sum(len(row.raw) for _, row in batch if isinstance(row, Row))

  def get_metrics_namespace(self) -> str:
    return "bertline_score"


class WriteShardFn(beam.DoFn):
  """A shard's predictions -> its predictions file, rejected rows and counts."""

  def __init__(self, work_dir: str, labels: List[str], version: str, compression: str,
               num_shards: int):
    self._work_dir, self._labels = work_dir, labels
    self._version, self._compression = version, compression
    self._num_shards = num_shards

  def process(self, keyed):
    shard, results = keyed
    markers = [r.example[1] for r in results if isinstance(r.example[1], Marker)]
    scored = sorted((r for r in results if isinstance(r.example[1], Row)),
                    key=lambda r: (r.example[1].file, r.example[1].line))
    if len(markers) != 1 or markers[0].rows != len(scored):
      raise RuntimeError(f"shard {shard}: read {markers[0].rows if markers else '?'} rows but "
                         f"{len(scored)} reached the writer: the runner lost rows. Nothing was "
                         "published; run the job again (another runner if it repeats).")
    lines, rejected = [], []
    for result in scored:
      row = result.example[1]
      if row.reason:
        rejected.append(line_shards.rejected_row(row.file, row.line, row.reason, row.raw))
        continue
      probabilities = [float(p) for p in result.inference]
      best = max(range(len(probabilities)), key=probabilities.__getitem__)
      lines.append(json.dumps({"id": row.id, "label": self._labels[best],
                               "probabilities": probabilities, "model_version": self._version},
                              ensure_ascii=False))
    data = ("\n".join(lines) + ("\n" if lines else "")).encode("utf-8")
    name = _shard_name(shard, self._num_shards)
    if self._compression == "gzip":
      data = gzip.compress(data, mtime=0)
    fileio.write_bytes_atomic(fileio.join(self._work_dir, name + _suffix(self._compression)), data)
    line_shards.write_report(self._work_dir, name,
                             {"scored": len(lines), "rejected": len(rejected)}, rejected)
    yield name


def _shard_name(shard: int, num_shards: int) -> str:
  return f"{PREDICTIONS_PREFIX}-{shard:05d}-of-{num_shards:05d}"


def _suffix(compression: str) -> str:
  return ".jsonl.gz" if compression == "gzip" else ".jsonl"


# --- The driver --------------------------------------------------------------------------------

def run(config: ScoreConfig) -> Dict[str, Any]:
  """Scores every row of the inputs; returns the summary it published."""
  config.check()
  beam_runner.check_args(config.beam_args, build_parser().flag_names())  # before any work
  fileio.check_credentials(config.model, config.output, *config.inputs)
  model = resolve_model(config.model)
  spec = config.input_spec
  if model.has_text_b and not spec.text_b:
    raise ValueError(f"{model.path} is a sentence-pair model: give --text-b (a TSV column or "
                     "JSON field) with --format tsv or jsonl")
  if spec.text_b and not model.has_text_b:
    raise ValueError(f"--text-b {spec.text_b}: {model.path} scores single texts; drop --text-b")
  files = expand_inputs(list(config.inputs))
  columns = {path: tsv_columns(spec, path) for path in files} if spec.format == "tsv" else {}
  options = beam_runner.pipeline_options(list(config.beam_args))
  with fileio.output_claim(config.output, ".bertline-score.lock",
                           f"another `bertline score` is writing to {config.output}; wait for "
                           "it, or choose another --output"):
    _check_output(config)
    if not fileio.is_remote(config.output):  # under the claim: left by a killed run
      for name in fileio.listdir(config.output):
        if name.startswith(TEMPORARY_PREFIX):
          fileio.rmtree(fileio.join(config.output, name))
    started = time.time()
    work = fileio.join(config.output, f"{TEMPORARY_PREFIX}{uuid.uuid4().hex[:12]}")
    try:
      summary = _run_pipeline(config, model, files, columns, options, work)
      summary["seconds"] = round(time.time() - started, 1)
      _publish(config, work, summary)
    finally:
      fileio.rmtree(work)
  log.info("Scored %d rows, rejected %d, in %.0fs: %s", summary["scored"], summary["rejected"],
           summary["seconds"], config.output)
  return summary


def _run_pipeline(config: ScoreConfig, model: ScoringModel, files: List[str],
                  columns: Dict[str, Dict[str, int]], options, work: str) -> Dict[str, Any]:
  ranges = [r for path in files for r in line_shards.plan_ranges(
      path, fileio.size(path), config.chunk_bytes, min_ranges=1)]
  num_shards = config.num_shards or len(ranges)
  log.info("Scoring %d file(s) in %d range(s), %d predictions file(s), with %s", len(files),
           len(ranges), num_shards, model.path)
  fileio.makedirs(work)
  with beam_runner.session(options) as runner:
    p = beam.Pipeline(runner=runner, options=options)
    _ = (
        p
        | "Ranges" >> beam.Create(list(enumerate(ranges)))
        | "CountLines" >> beam.FlatMap(_count_range)
        | "AllCounts" >> beam.GroupByKey()
        | "PlanShards" >> beam.ParDo(PlanShardsFn(ranges, num_shards))
        | "SpreadShards" >> beam.GroupByKey()
        | "ReadRows" >> beam.ParDo(ReadRowsFn(config.input_spec, columns, model.has_text_b,
                                              config.batch_size))
        | "RunInference" >> RunInference(
            RawTextModelHandler(model.path, model.has_text_b).with_no_batching())
        | "KeyByShard" >> beam.Map(lambda result: (result.example[0], result))
        | "GroupShards" >> beam.GroupByKey()
        | "WriteShard" >> beam.ParDo(WriteShardFn(work, model.labels, model.version,
                                                  config.compression, num_shards)))
    beam_runner.run(p)

  names = [_shard_name(s, num_shards) for s in range(num_shards)]
  reports = line_shards.read_counts(work, names, "score")
  scored = sum(r["scored"] for r in reports)
  rejected = sum(r["rejected"] for r in reports)
  line_shards.gather_rejected(work, names, fileio.join(work, REJECTED_FILE))
  return {
      "model": model.path, "model_version": model.version, "labels": model.labels,
      "inputs": files, "format": config.input_spec.format, "rows": scored + rejected,
      "scored": scored, "rejected": rejected,
      "files": [_shard_name(s, num_shards) + _suffix(config.compression)
                for s in range(num_shards)],
      "rejected_file": REJECTED_FILE,
  }


def _check_output(config: ScoreConfig) -> None:
  summary = fileio.join(config.output, SUMMARY_FILE)
  if fileio.exists(summary) and not config.overwrite:
    raise FileExistsError(f"{summary} exists: {config.output} holds a finished scoring. Choose "
                          "another --output or pass --overwrite.")


def _publish(config: ScoreConfig, work: str, summary: Dict[str, Any]) -> None:
  """Moves the run's files into OUTPUT; summary.json, written last, makes it a finished run."""
  out = config.output
  summary_path = fileio.join(out, SUMMARY_FILE)
  if fileio.exists(summary_path):  # --overwrite: the old run stops being finished first
    fileio.remove(summary_path)
  for name in fileio.listdir(out):
    path = fileio.join(out, name)
    if name == schema.REJECTED_DIR:
      fileio.rmtree(path)
    elif name.startswith(PREDICTIONS_PREFIX + "-"):
      fileio.remove(path)
  for name in summary["files"] + [REJECTED_FILE]:
    fileio.rename(fileio.join(work, name), fileio.join(out, name))
  fileio.write_json_atomic(summary_path, summary)


# --- CLI ---------------------------------------------------------------------------------------

def build_parser() -> flags.ArgumentParser:
  parser = flags.ArgumentParser(
      prog="bertline score",
      description="Score every row of text files with an exported model on Apache Beam "
      "(RunInference): OUTPUT/predictions-*.jsonl with id, label, probabilities and "
      "model_version per row, OUTPUT/rejected/rows.tsv for rows that cannot be scored, "
      "OUTPUT/summary.json last.\n\nOther options go to Apache Beam, which must declare "
      "them (--runner DaskRunner, --runner DataflowRunner --project P --region R "
      "--temp_location gs://...); a flag neither has is refused.",
      epilog="Examples: bertline score --model registry --input 'new/*.txt' --output scored; "
      "bertline score --model export/3 --input rows.tsv --format tsv --text-a text --id "
      "row_id --output scored")
  # Required, but checked after Beam's options are: a misspelled flag is named as such first.
  parser.add_argument("--model",
                      help="an exported version directory, or a push target (its last pushed "
                      "version is used); local or gs:// [required]")
  parser.add_argument("--input", action="append",
                      help="a file, glob or gs:// pattern; repeat for more [required]")
  parser.add_argument("--output", help="output directory (local or gs://) [required]")
  parser.add_argument("--format", choices=FORMATS, default="text",
                      help="text: one text per line (default); tsv: columns by index or header "
                      "name; jsonl: one JSON object per line")
  parser.add_argument("--text-a", default="",
                      help="tsv: column index or header name (default 0); jsonl: field (default "
                      "text)")
  parser.add_argument("--text-b", default="", help="second text for sentence-pair models")
  parser.add_argument("--id", default="",
                      help="column or field holding each row's id (default FILE:LINE)")
  parser.add_argument("--header", action=argparse.BooleanOptionalAction, default=None,
                      help="tsv: the first line of each file is a header (default: when a "
                      "column is named)")
  parser.add_argument("--compression", choices=COMPRESSIONS, default="none",
                      help="predictions files compression (default none)")
  parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE,
                      help=f"rows per model call (default {DEFAULT_BATCH_SIZE})")
  parser.add_argument("--chunk-bytes", type=int, default=line_shards.DEFAULT_CHUNK_BYTES,
                      help="input bytes per unit of work (default 1 MiB)")
  parser.add_argument("--num-shards", type=int, default=0,
                      help="predictions files (default 0: one per --chunk-bytes range)")
  parser.add_argument("--overwrite", action="store_true",
                      help="replace a finished scoring in --output (refused by default)")
  return parser


def config_from_args(argv: List[str]) -> ScoreConfig:
  parser = build_parser()
  args, beam_args = parser.parse_known_args(argv)
  beam_runner.check_args(beam_args, parser.flag_names())
  missing = [flag for flag in ("--model", "--input", "--output") if not getattr(args, flag[2:])]
  if missing:
    parser.error(f"the following flags are required: {', '.join(missing)}")
  spec = InputSpec(args.format, args.text_a, args.text_b, args.id, args.header)
  return ScoreConfig(args.model, tuple(args.input), args.output, spec, args.compression,
                     args.batch_size, args.chunk_bytes, args.num_shards, args.overwrite,
                     tuple(beam_args))


def main(argv: List[str]) -> int:
  summary = run(config_from_args(argv))
  print(f"score: {summary['scored']} rows scored, {summary['rejected']} rejected "
        f"(model version {summary['model_version']}) -> {summary['files'][0]} ...")
  return 0
