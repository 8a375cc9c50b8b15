"""`bertline score`: a pushed model over millions of texts, on Beam's RunInference.

    bertline score --model registry/ --input 'gs://b/new/*.txt' --output gs://b/scored/2026-11-25

Writes OUTPUT/predictions-SSSSS-of-NNNNN.jsonl[.gz], one object per input row —
{"id", "label", "probabilities" (in the order of summary.json's labels),
"model_version"} (a multi-label model's: "labels", those at or above their
threshold, instead of "label") — OUTPUT/rejected/rows.tsv (file, line, reason, raw row) and
OUTPUT/summary.json, written last: a directory with a summary.json is a
finished run, and every input row is in it, scored or rejected.

The model is an exported version (its serving_default signature tokenizes raw
text in the graph, so nothing here re-implements WordPiece) or a push target,
whose last pushed version is used. The graph, one chain every Beam runner
runs alike (see preprocessing/beam_job.py for why):

  Shards (bertline/beam_shards.py, as preprocess: ranges -> line counts ->
  shard plan -> shards spread over workers) -> ReadRows (parse; batches of
  --batch-size rows) -> RunInference (the model loaded once per worker
  process; batches prebatched, so the runner holds nothing back)
  -> GroupByKey by shard -> WriteShard (checks that every row the shard read
  came through, then writes it).
"""

from __future__ import annotations

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

from bertline import beam_runner, beam_shards, fileio, flags, line_shards, registry, schema
from bertline.evaluator import config
from bertline.evaluator.config import ScoreConfig
from bertline.export_dir import ExportDir
from bertline.evaluator.score_inputs import InputSpec, Row, expand_inputs, parse, tsv_columns

log = logging.getLogger("bertline.score")

SUMMARY_FILE = "summary.json"
PREDICTIONS_PREFIX = "predictions"
REJECTED_FILE = f"{schema.REJECTED_DIR}/rows.tsv"
TEMPORARY_PREFIX = "_temporary-"  # a run writes here, then moves its files into place


class ScoringModel(NamedTuple):
  """The version to score with and what its metadata says of it."""
  path: str
  version: str
  labels: List[str]
  has_text_b: bool


def resolve_model(model: str) -> ScoringModel:
  """An exported version directory, or the last pushed version under a push target."""
  path = registry.resolve_version(model, f"--model {model}")
  if path != model.rstrip("/"):
    log.info("Scoring with %s, the last pushed version under %s.", path, model)
  metadata = registry.pushed_metadata(path)
  if not metadata.get("labels"):
    raise ValueError(f"{ExportDir(path).metadata_file} is missing or names no labels: "
                     "score needs a version written by `bertline export`.")
  return ScoringModel(path, os.path.basename(path), list(metadata["labels"]),
                      bool(metadata.get("has_text_b")))


# --- Beam transforms ---------------------------------------------------------------------------

class Marker(NamedTuple):
  """Travels with a shard's rows: how many rows the shard read (none may be lost)."""
  shard: int
  rows: int


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
      # A worker's imports: the driver, and --help, run without TensorFlow.
      import tensorflow as tf
      import tensorflow_text  # noqa: F401  (registers the in-graph tokenizer's ops)
      from bertline.exporter import quantize  # TensorFlow, as above
      if quantize.is_tflite(self._path):  # `export --quantize`: tokenizer/ + model.tflite
        loaded = quantize.TFLiteModel(self._path)
      else:
        loaded = tf.saved_model.load(self._path)
      _MODELS[self._path] = _Loaded(loaded, loaded.signatures[schema.SIGNATURE_TEXT])
    return _MODELS[self._path]

  def run_inference(self, batch: Sequence[Tuple[int, Any]], model, inference_args=None
                    ) -> Iterable[PredictionResult]:
    import tensorflow as tf  # a worker's, as in load_model
    signature = model.signature
    rows = [row for _, row in batch if isinstance(row, Row) and not row.reason]
    scored = iter(())
    if rows:
      inputs = {schema.SERVING_TEXT_A: tf.constant([r.text_a for r in rows])}
      if self._pair:
        inputs[schema.SERVING_TEXT_B] = tf.constant([r.text_b for r in rows])
      out = signature(**inputs)
      probabilities = np.asarray(out[schema.OUTPUT_PROBABILITIES])
      # A multi-label model's own decisions (its thresholds, in its graph); None otherwise.
      called = (np.asarray(out[schema.OUTPUT_PREDICTED]) if schema.OUTPUT_PREDICTED in out
                else [None] * len(rows))
      scored = zip(probabilities, called)
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
      scores, predicted = result.inference
      probabilities = [float(p) for p in scores]
      if predicted is not None:  # multi-label: the labels the serving graph called
        called = {"labels": [label for label, c in zip(self._labels, predicted) if c]}
      else:
        called = {"label": self._labels[max(range(len(probabilities)),
                                            key=probabilities.__getitem__)]}
      lines.append(json.dumps({"id": row.id, **called, "probabilities": probabilities,
                               "model_version": self._version}, ensure_ascii=False))
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
  beam_runner.pipeline_options(list(config.beam_args))  # bad Beam options fail before any work
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
      summary = _run_pipeline(config, model, files, columns, work)
      summary["seconds"] = round(time.time() - started, 1)
      _publish(config, work, summary)
    finally:
      fileio.rmtree(work)
  log.info("Scored %d rows, rejected %d, in %.0fs: %s", summary["scored"], summary["rejected"],
           summary["seconds"], config.output)
  return summary


def _run_pipeline(config: ScoreConfig, model: ScoringModel, files: List[str],
                  columns: Dict[str, Dict[str, int]], work: str) -> Dict[str, Any]:
  ranges = [r for path in files for r in line_shards.plan_ranges(
      path, fileio.size(path), config.chunk_bytes, min_ranges=1)]
  num_shards = config.num_shards or len(ranges)
  # Locally no more worker processes than units of work: one range of rows is scored in this
  # process, without starting (and loading TensorFlow and the model in) an idle second worker.
  options = beam_runner.pipeline_options(list(config.beam_args),
                                         local_work_units=max(len(ranges), num_shards))
  log.info("Scoring %d file(s) in %d range(s), %d predictions file(s), with %s", len(files),
           len(ranges), num_shards, model.path)
  fileio.makedirs(work)
  with beam_runner.session(options) as runner:
    p = beam.Pipeline(runner=runner, options=options)
    _ = (
        p
        | "Shards" >> beam_shards.LineShards({"": ranges}, {"": num_shards})
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

# The flags live with the config (evaluator/config.py): `--help` answers without Beam.
build_parser = config.score_parser


def config_from_args(argv: List[str]) -> ScoreConfig:
  """The config of a command line: score's flags, and Beam's options as beam_args."""
  parser = build_parser()
  args, beam_args = parser.parse_known_args(argv)
  # A misspelled flag is refused as such, before a required flag it meant is missed.
  beam_runner.check_args(beam_args, parser.flag_names())
  return flags.config_from_flags(ScoreConfig, args, parser, beam_args=beam_args)


def main(argv: List[str]) -> int:
  summary = run(config_from_args(argv))
  print(f"score: {summary['scored']} rows scored, {summary['rejected']} rejected "
        f"(model version {summary['model_version']}) -> {summary['files'][0]} ...")
  return 0
