"""`bertline pretrain-data`: raw text -> masked-LM pre-training instances -> sharded TFRecords.

create_pretraining_data.py, rebuilt as a Beam job. The driver cuts each input
file into work units of about --chunk-bytes, each boundary moved to the next
document start (so a unit holds whole documents), reading only a few lines at
each boundary. Each worker then takes a unit: reads its lines, tokenizes them
with the graph tokenizer preprocess and serving use (BERT's FullTokenizer,
exactly), gathers documents, sets the held-out ones aside, and runs Google's
instance algorithm (pretraining/instances.py) over the unit with its own
random stream — shuffle, pairs, truncation, masks — writing one train shard
and one held-out shard. One unit over a whole input file is Google's script
exactly: the same instances in the same order (unit 0's stream is seeded with
--random-seed itself).

Lines that yield no token (control characters only) are kept in
rejected/lines.tsv with file, line and reason; bytes that are not UTF-8 are
dropped, as BERT's convert_to_unicode does, and counted. Every run writes under
its own run-<id>/, and metadata.json, written last and atomically, publishes it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import random
import threading
import time
import uuid
from typing import Dict, List, Optional, Tuple

import apache_beam as beam

from bertline import beam_runner, fileio, flags, line_shards, schema
from bertline.pretraining import instances as instances_lib
from bertline.pretraining.config import PretrainDataConfig, build_parser

log = logging.getLogger("bertline.pretrain_data")

TRAIN = "train"
COUNT_KEYS = ("lines", "blank_lines", "lines_without_tokens", "invalid_utf8_lines", "documents",
              "single_sentence_documents", "sentences", "tokens", "held_out_documents")
REJECTED_FILE = "lines.tsv"
_LOOKAHEAD = 1 << 16


def config_from_args(argv: Optional[List[str]] = None) -> PretrainDataConfig:
  """The config of a command line: pretrain-data's flags, and Beam's options as beam_args."""
  parser = build_parser()
  args, beam_args = parser.parse_known_args(argv)
  beam_runner.check_args(beam_args, parser.flag_names())
  return flags.config_from_flags(PretrainDataConfig, args, parser, beam_args=beam_args)


# --- the driver's plan: work units of whole documents ---------------------------------------
def _is_blank(line: bytes) -> bool:
  """Google's document delimiter: a line that is empty once decoded and strip()ped."""
  return not line.decode("utf-8", "ignore").strip()


def _lines_from(f, pos: int):
  """(start, line with its LF) from byte `pos` on, read a block at a time."""
  f.seek(pos)
  rest = b""
  while True:
    block = f.read(_LOOKAHEAD)
    if not block:
      if rest:
        yield pos, rest
      return
    rest += block
    cut = rest.find(b"\n")
    while cut >= 0:
      yield pos, rest[:cut + 1]
      pos, rest = pos + cut + 1, rest[cut + 1:]
      cut = rest.find(b"\n")


def document_start(path: str, offset: int, size: int) -> int:
  """The start of the first line after a blank line, past `offset` (`size` if none).

  Lines before it continue a document that began before `offset`: they belong to
  the unit before. Reads from `offset` only as far as that blank line.
  """
  with fileio.open_read(path) as f:
    lines = _lines_from(f, offset - 1)
    next(lines, None)  # the line holding byte offset - 1: it started before `offset`
    for start, line in lines:
      if _is_blank(line):
        return start + len(line)
  return size


def plan_units(files: List[str], config: PretrainDataConfig) -> List[line_shards.ByteRange]:
  """Each file in ranges of about chunk_bytes (at least num_shards in all), document-aligned."""
  sizes = {path: fileio.size(path) for path in files}
  total = sum(sizes.values()) or 1
  units = []
  for path in files:
    wanted = -(-config.num_shards * sizes[path] // total) if config.num_shards else 1
    ranges = line_shards.plan_ranges(path, sizes[path], config.chunk_bytes, min_ranges=wanted)
    cuts = [0]
    for r in ranges[1:]:
      cut = r.start if config.input_format == "documents" else document_start(
          path, r.start, sizes[path])
      if cut > cuts[-1]:
        cuts.append(cut)
    cuts.append(sizes[path])
    units += [line_shards.ByteRange(path, a, b) for a, b in zip(cuts, cuts[1:]) if b > a]
  return units or [line_shards.ByteRange(files[0], 0, 0)]


# --- a worker's unit ----------------------------------------------------------------------------
@dataclasses.dataclass
class _Read:
  """A unit's documents (as token ids), which are held out, and what was set aside."""
  documents: List[instances_lib.Document]
  held_out: List[bool]
  counts: Dict[str, int]
  rejected: List[Tuple[int, str, bytes]]  # (line index within the unit, reason, raw line)


def _held_out(seed: int, path: str, offset: int, fraction: float) -> bool:
  """A document's fate by a hash of where it starts: stable, and no draw from the random stream."""
  if fraction <= 0:
    return False
  digest = hashlib.blake2b(f"{seed}:{path}:{offset}".encode(), digest_size=8).digest()
  return int.from_bytes(digest, "big") < fraction * 2**64


# Built once per worker process (the Unicode tables take seconds); threads share it.
_TOKENIZERS: Dict[Tuple[str, bool], object] = {}
_BUILD_LOCK = threading.Lock()


class MakeInstancesFn(beam.DoFn):
  """One work unit -> its train and held-out shards, its rejected lines and its counts."""

  def __init__(self, config: PretrainDataConfig, run_dir: str, num_units: int):
    self._config, self._run_dir, self._num_units = config, run_dir, num_units

  def setup(self):
    import tensorflow as tf  # a worker's: the driver, and --help, run without TensorFlow
    from bertline.preprocessing import tokenization  # TensorFlow, as above
    self._tf = tf
    key = (self._config.vocab_file, self._config.do_lower_case)
    with _BUILD_LOCK:
      if key not in _TOKENIZERS:
        _TOKENIZERS[key] = tokenization.BertTokenizer(*key)
    self._tokenizer = _TOKENIZERS[key]
    self._vocab = instances_lib.Vocabulary(self._tokenizer.vocab)

  def process(self, keyed):
    _, units = keyed
    for index, unit in units:
      yield self._unit(index, unit)

  def _unit(self, index: int, unit: line_shards.ByteRange) -> str:
    config = self._config
    read = self._read(unit)
    settings = instances_lib.Settings(
        max_seq_length=config.max_seq_length, short_seq_prob=config.short_seq_prob,
        masked_lm_prob=config.masked_lm_prob,
        max_predictions_per_seq=config.max_predictions_per_seq, dupe_factor=config.copies,
        pairs=config.pairs, whole_word_mask=config.do_whole_word_mask,
        mask=config.masking == "static")
    # Unit 0's stream is seeded as Google's script seeds its one stream.
    seeds = {TRAIN: config.random_seed if index == 0 else f"{config.random_seed}:{index}",
             schema.HELD_OUT_SPLIT: f"{config.random_seed}:{schema.HELD_OUT_SPLIT}:{index}"}
    counts = dict(read.counts)
    for split, keep in ((TRAIN, False), (schema.HELD_OUT_SPLIT, True)):
      if split == schema.HELD_OUT_SPLIT and not config.held_out_fraction:
        continue
      documents = [d for d, out in zip(read.documents, read.held_out) if out == keep]
      made = (instances_lib.create_instances(documents, settings, self._vocab,
                                             random.Random(seeds[split]))
              if documents else [])
      self._write(split, index, made)
      counts[f"{split}_instances"] = len(made)
    name = schema.shard_name(TRAIN, index, self._num_units)
    rows = [line_shards.rejected_row(unit.path, line, reason, raw)
            for line, reason, raw in read.rejected]
    line_shards.write_report(self._run_dir, name, counts, rows)
    return name

  def _read(self, unit: line_shards.ByteRange) -> _Read:
    config = self._config
    counts = dict.fromkeys(COUNT_KEYS, 0)
    rejected: List[Tuple[int, str, bytes]] = []
    lines = list(line_shards.read_range(unit))
    counts["lines"] = len(lines)
    offsets, offset = [], unit.start
    for line in lines:  # each line's byte offset: where a document starts names it
      offsets.append(offset)
      offset += len(line) + 1
    ids: List[List[int]] = []
    for lo in range(0, len(lines), config.batch_size):
      batch = lines[lo:lo + config.batch_size]
      ids += self._tokenizer.tokenize(self._tf.constant(batch)).to_list()
    documents: List[instances_lib.Document] = [[]]
    starts = [unit.start]
    for i, (line, tokens) in enumerate(zip(lines, ids)):
      try:
        line.decode("utf-8")
      except UnicodeDecodeError:
        counts["invalid_utf8_lines"] += 1
      if _is_blank(line):
        counts["blank_lines"] += 1
        if config.input_format == "sentences":
          documents.append([])
          starts.append(offsets[i] + len(line) + 1)
        continue
      if not tokens:
        counts["lines_without_tokens"] += 1
        rejected.append((i, "no tokens: the line holds only characters BERT's tokenizer "
                            "removes (control or format characters)", line))
        continue
      if config.input_format == "documents":
        documents.append([tokens])
        starts.append(offsets[i])
      else:
        if not documents[-1]:
          starts[-1] = offsets[i]
        documents[-1].append(tokens)
    kept = [(d, s) for d, s in zip(documents, starts) if d]
    counts["documents"] = len(kept)
    counts["single_sentence_documents"] = sum(len(d) == 1 for d, _ in kept)
    counts["sentences"] = sum(len(d) for d, _ in kept)
    counts["tokens"] = sum(len(s) for d, _ in kept for s in d)
    held_out = [_held_out(config.random_seed, unit.path, s, config.held_out_fraction)
                for _, s in kept]
    counts["held_out_documents"] = sum(held_out)
    return _Read([d for d, _ in kept], held_out, counts, rejected)

  def _write(self, split: str, index: int, made: List[instances_lib.Instance]) -> None:
    tf = self._tf
    config = self._config
    path = fileio.join(self._run_dir, schema.shard_name(split, index, self._num_units,
                                                        config.compression))
    temporary = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
    options = tf.io.TFRecordOptions(compression_type=schema.TF_COMPRESSION_TYPE[
        config.compression])
    with tf.io.TFRecordWriter(temporary, options) as writer:
      for instance in made:
        writer.write(serialize(instance, config, tf))
    fileio.rename(temporary, path)


def serialize(instance: instances_lib.Instance, config: PretrainDataConfig, tf) -> bytes:
  """write_instance_to_example_files' tf.train.Example: padded with 0s, weights 1.0 per mask."""
  def ints(values, length):
    return tf.train.Feature(int64_list=tf.train.Int64List(
        value=list(values) + [0] * (length - len(values))))
  n, m = config.max_seq_length, config.max_predictions_per_seq
  features = {
      schema.INPUT_IDS: ints(instance.input_ids, n),
      schema.INPUT_MASK: ints([1] * len(instance.input_ids), n),
      schema.SEGMENT_IDS: ints(instance.segment_ids, n),
  }
  if config.masking == "static":
    features[schema.MASKED_LM_POSITIONS] = ints(instance.masked_lm_positions, m)
    features[schema.MASKED_LM_IDS] = ints(instance.masked_lm_ids, m)
    weights = [1.0] * len(instance.masked_lm_ids) + [0.0] * (m - len(instance.masked_lm_ids))
    features[schema.MASKED_LM_WEIGHTS] = tf.train.Feature(
        float_list=tf.train.FloatList(value=weights))
  if config.pairs != "none":
    features[schema.NEXT_SENTENCE_LABELS] = ints([instance.next_sentence_label], 1)
  return tf.train.Example(features=tf.train.Features(feature=features)).SerializeToString()


# --- the driver ---------------------------------------------------------------------------------
def _validate(config: PretrainDataConfig) -> List[str]:
  if config.input_format == "documents" and config.pairs == "nsp":
    raise ValueError("--pairs nsp with --input-format documents: next-sentence prediction "
                     "needs sentence boundaries. Give one sentence per line (--input-format "
                     "sentences), or use --pairs sop or none.")
  fileio.check_credentials(config.vocab_file, config.output_dir, *config.input)
  files = fileio.expand_inputs(list(config.input), "--input", "its documents would be read "
                               "twice")
  from bertline.preprocessing import tokenization  # TensorFlow: only once the flags are good
  tokenization.check_vocab_file(config.vocab_file)
  instances_lib.Vocabulary(tokenization.load_vocab(config.vocab_file))  # [MASK] and friends
  if fileio.exists(fileio.join(config.output_dir, schema.METADATA_FILE)) and not config.overwrite:
    raise FileExistsError(f"{config.output_dir} holds a finished output (metadata.json); give "
                          "--overwrite to replace it, or another --output-dir")
  return files


def run(config: PretrainDataConfig) -> schema.PretrainingMetadata:
  """Builds and runs the pretrain-data pipeline; returns the metadata it published."""
  beam_runner.check_args(config.beam_args, flags.flag_names(PretrainDataConfig))
  files = _validate(config)
  units = plan_units(files, config)
  log.info("%d file(s) in %d work unit(s); %s masking, pairs: %s, %d cop%s of the corpus",
           len(files), len(units), config.masking, config.pairs, config.copies,
           "y" if config.copies == 1 else "ies")
  with fileio.output_claim(config.output_dir, ".bertline-pretrain-data.lock",
                           f"another `bertline pretrain-data` is writing to "
                           f"{config.output_dir}; wait for it, or choose another --output-dir"):
    _validate(config)  # again, now that no one else can be writing
    run_name = f"{schema.RUN_DIR_PREFIX}{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:8]}"
    run_dir = fileio.join(config.output_dir, run_name)
    try:
      metadata = _run_pipeline(config, units, run_dir, run_name)
    except BaseException:
      fileio.rmtree(run_dir)  # nothing of a failed run stays, and nothing was published
      raise
    for name in fileio.listdir(config.output_dir):  # the runs this one replaces (--overwrite)
      if name.startswith(schema.RUN_DIR_PREFIX) and name.rstrip("/") != run_name:
        fileio.rmtree(fileio.join(config.output_dir, name))
  return metadata


def _run_pipeline(config: PretrainDataConfig, units: List[line_shards.ByteRange], run_dir: str,
                  run_name: str) -> schema.PretrainingMetadata:
  # Building instances is Python work that holds the GIL: a worker process per core.
  options = beam_runner.pipeline_options(list(config.beam_args), local_mode="multi_processing",
                                         local_work_units=len(units))
  started = time.time()
  fileio.makedirs(run_dir)
  with beam_runner.session(options) as runner:
    p = beam.Pipeline(runner=runner, options=options)
    _ = (p
         | "Units" >> beam.Create([(i, (i, u)) for i, u in enumerate(units)])
         | "SpreadUnits" >> beam.GroupByKey()
         | "MakeInstances" >> beam.ParDo(MakeInstancesFn(config, run_dir, len(units))))
    beam_runner.run(p)

  names = [schema.shard_name(TRAIN, i, len(units)) for i in range(len(units))]
  reports = line_shards.read_counts(run_dir, names, "pretrain-data")
  counts = {key: sum(r.get(key, 0) for r in reports) for key in reports[0]}
  rejected_file = f"{run_name}/{schema.REJECTED_DIR}/{REJECTED_FILE}"
  _gather_rejected(run_dir, names, units, reports, fileio.join(config.output_dir, rejected_file))
  fileio.rmtree(fileio.join(run_dir, schema.REJECTED_PARTS_DIR))
  fileio.rmtree(fileio.join(run_dir, schema.COUNTS_DIR))
  if not counts[f"{TRAIN}_instances"]:
    raise ValueError(f"{', '.join(config.input)}: not one training instance was made from "
                     f"{counts['lines']} line(s) ({counts['documents']} document(s) with "
                     "tokens). Check the input and --input-format.")
  if config.held_out_fraction and not counts.get(f"{schema.HELD_OUT_SPLIT}_instances"):
    log.warning("No document was held out (%d documents, --held-out-fraction %s): the corpus is "
                "too small to set some aside, so `bertline pretrain` will not evaluate.",
                counts["documents"], config.held_out_fraction)
  splits = {}
  for split in (TRAIN, schema.HELD_OUT_SPLIT):
    if counts.get(f"{split}_instances"):
      splits[split] = schema.SplitInfo(
          file_pattern=f"{run_name}/{schema.shard_glob(split, config.compression)}",
          num_examples=counts[f"{split}_instances"], num_rejected=counts["lines_without_tokens"],
          rejected_file=rejected_file, num_invalid_utf8=counts["invalid_utf8_lines"],
          files=[f"{run_name}/{schema.shard_name(split, i, len(units), config.compression)}"
                 for i in range(len(units))])
  from bertline.preprocessing.tokenization import load_vocab  # TensorFlow: after the flags
  settings = {k: v for k, v in dataclasses.asdict(config).items()
              if k not in ("beam_args", "output_dir", "overwrite")}
  metadata = schema.PretrainingMetadata(
      splits=splits, settings=settings, counts=counts, max_seq_length=config.max_seq_length,
      max_predictions_per_seq=config.max_predictions_per_seq, masking=config.masking,
      pairs=config.pairs, do_lower_case=config.do_lower_case,
      vocab_sha256=fileio.sha256_file(config.vocab_file),
      vocab_size=len(load_vocab(config.vocab_file)), compression=config.compression)
  path = metadata.write(config.output_dir)
  _log_counts(counts, rejected_file, config)
  log.info("Wrote %s in %.1fs", path, time.time() - started)
  return metadata


def _gather_rejected(run_dir: str, names: List[str], units: List[line_shards.ByteRange],
                     reports: List[Dict[str, int]], dest: str) -> None:
  """The units' rejected lines in one file, their line numbers counted from each file's start."""
  first, parts = {}, [line_shards.REJECTED_HEADER]
  for name, unit, report in zip(names, units, reports):
    before = first.get(unit.path, 0)
    first[unit.path] = before + report["lines"]
    part = fileio.join(run_dir, schema.REJECTED_PARTS_DIR, name + ".tsv")
    if not fileio.exists(part):
      continue
    for row in fileio.read_bytes(part).splitlines(keepends=True):
      path, line, rest = row.split(b"\t", 2)
      parts.append(b"\t".join([path, str(before + int(line) + 1).encode(), rest]))
  fileio.write_bytes_atomic(dest, b"".join(parts))


def _log_counts(counts: Dict[str, int], rejected_file: str, config: PretrainDataConfig) -> None:
  log.info("Read %d lines: %d documents, %d sentences, %d tokens; %d train instances%s",
           counts["lines"], counts["documents"], counts["sentences"], counts["tokens"],
           counts[f"{TRAIN}_instances"],
           f", {counts.get('heldout_instances', 0)} held out "
           f"({counts['held_out_documents']} documents)" if config.held_out_fraction else "")
  if counts["lines_without_tokens"]:
    log.warning("%d line(s) yielded no token and were set aside: see %s",
                counts["lines_without_tokens"], rejected_file)
  if counts["invalid_utf8_lines"]:
    log.warning("%d line(s) held bytes that are not UTF-8; those bytes were dropped, as BERT's "
                "convert_to_unicode does", counts["invalid_utf8_lines"])
  if config.pairs != "none" and counts["single_sentence_documents"]:
    log.info("%d document(s) of one sentence: %s", counts["single_sentence_documents"],
             "paired with a random document's sentences (NSP label 1), as Google's script does"
             if config.pairs == "nsp" else "each cut in two at a random token for the order task")


def main(argv: List[str]) -> int:
  metadata = run(config_from_args(argv))
  made = ", ".join(f"{s.num_examples} {name}" for name, s in metadata.splits.items())
  print(f"pretrain-data: {made} instances ({metadata.masking} masking, pairs: "
        f"{metadata.pairs}) -> {metadata.splits['train'].file_pattern}")
  return 0
