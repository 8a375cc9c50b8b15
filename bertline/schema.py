"""Names shared by every stage: TFRecord features, file layouts, metadata keys.

Defined once here and imported by the writer (the Beam job), the readers (the
trainer and evaluator) and the serving signatures, so that no two stages can
disagree about a feature name or where a file lives.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Dict, List, Optional, Tuple

from bertline import fileio

# --- TFRecord features (the names run_classifier.py's readers use) ---------
INPUT_IDS = "input_ids"
INPUT_MASK = "input_mask"
SEGMENT_IDS = "segment_ids"
LABEL_IDS = "label_ids"
IS_REAL_EXAMPLE = "is_real_example"
# The reference processor's guid, so predictions can be joined back to their
# input rows after parallel, unordered writing.
GUID = "guid"

SEQUENCE_FEATURES = (INPUT_IDS, INPUT_MASK, SEGMENT_IDS)
SCALAR_INT_FEATURES = (LABEL_IDS, IS_REAL_EXAMPLE)

# --- Files of a preprocess output directory ---------------------------------
METADATA_FILE = "metadata.json"
REJECTED_DIR = "rejected"
TFRECORD_SUFFIX = ".tfrecord"
COMPRESSION_SUFFIX = {"none": "", "gzip": ".gz"}
TF_COMPRESSION_TYPE = {"none": "", "gzip": "GZIP"}

SPLITS = ("train", "dev", "test")

# --- Special tokens ----------------------------------------------------------
CLS_TOKEN = "[CLS]"
SEP_TOKEN = "[SEP]"
UNK_TOKEN = "[UNK]"
PAD_ID = 0


def shard_name(split: str, shard: int, num_shards: int, compression: Optional[str] = None) -> str:
  """<split>-SSSSS-of-NNNNN, with the TFRecord suffix when a compression is given."""
  name = f"{split}-{shard:05d}-of-{num_shards:05d}"
  return name + shard_suffix(compression) if compression is not None else name


def shard_suffix(compression: str) -> str:
  return TFRECORD_SUFFIX + COMPRESSION_SUFFIX[compression]


def shard_glob(split: str, compression: str) -> str:
  """File pattern of a split, relative to the output directory."""
  return f"{split}-*-of-*{shard_suffix(compression)}"


def feature_spec(max_seq_length: int, labels: bool = True, guid: bool = True,
                 multi_labels: int = 0) -> Dict[str, Any]:
  """tf.io parsing spec of one serialized example, as written by preprocess.

  Args:
    max_seq_length: int. Length of the sequence features.
    labels: bool. Also parse label_ids and is_real_example (serving parses
      client examples, which need not carry them).
    guid: bool. Also parse the guid (only readers that report per example do).
    multi_labels: int. A multi-label task's number of labels: label_ids is then
      a multi-hot vector of that length (DataMetadata.label_width).
  """
  import tensorflow as tf  # Imported lazily: the CLI's --help stays fast.

  spec = {
      name: tf.io.FixedLenFeature([max_seq_length], tf.int64)
      for name in SEQUENCE_FEATURES
  }
  if labels:
    for name in SCALAR_INT_FEATURES:
      spec[name] = tf.io.FixedLenFeature([1], tf.int64)
    if multi_labels:
      spec[LABEL_IDS] = tf.io.FixedLenFeature([multi_labels], tf.int64)
  if guid:
    spec[GUID] = tf.io.FixedLenFeature([1], tf.string)
  return spec


@dataclasses.dataclass
class SplitInfo:
  """One split of a preprocess output.

  Attributes:
    file_pattern: str. Glob of the split's shards, relative to the data dir.
    num_examples: int. Examples written.
    num_rejected: int. Input rows rejected (kept under rejected/ with a reason).
    rejected_file: str. Where the rejected rows are, relative to the data dir.
    num_invalid_utf8: int. Written examples whose text held bytes that are not
      UTF-8 (dropped by the tokenizer, as BERT's convert_to_unicode does).
    num_empty_text: int. Written examples with an empty or whitespace-only text
      (kept as [CLS] [SEP], as run_classifier does, and counted here).
    files: list of str. The split's shards, relative to the data dir: readers
      read exactly these (a file matching the pattern but not listed, say from
      an older run, is never read).
  """

  file_pattern: str
  num_examples: int = 0
  num_rejected: int = 0
  rejected_file: str = ""
  num_invalid_utf8: int = 0
  num_empty_text: int = 0
  files: List[str] = dataclasses.field(default_factory=list)


def _metadata_from_dict(cls, d: Dict[str, Any], source: str, command: str):
  """A metadata.json's dict as `cls`: unknown or missing keys named, with the fix."""
  known = {f.name for f in dataclasses.fields(cls)}
  unknown = sorted(set(d) - known)
  if unknown:
    raise ValueError(f"{source}: unknown key(s) {unknown}; expected some of {sorted(known)}.")
  missing = [f.name for f in dataclasses.fields(cls)
             if f.default is dataclasses.MISSING and f.name not in d]
  if missing:
    raise ValueError(f"{source}: missing key(s) {missing}. Re-run `bertline {command}`.")
  d = dict(d)
  d["splits"] = {k: SplitInfo(**v) for k, v in d["splits"].items()}
  return cls(**d)


@dataclasses.dataclass
class DataMetadata:
  """metadata.json: the only file downstream stages read to find their inputs.

  Attributes:
    task: str. Task name (built in or the custom task's name).
    labels: list of str. Label list; label_ids index into it.
    splits: dict of split name to SplitInfo.
    max_seq_length: int. Length every sequence feature is padded to.
    do_lower_case: bool. Tokenizer casing.
    vocab_sha256: str. Hash of the vocabulary the ids refer to.
    vocab_size: int. Number of entries of that vocabulary.
    compression: str. "none" or "gzip".
    has_text_b: bool. Whether the task is a sentence pair task.
    multi_label: bool. label_ids is a multi-hot vector over `labels` (a set of
      labels per example); written only when true, so a single-label task's
      metadata.json is what it always was.
  """

  task: str
  labels: List[str]
  splits: Dict[str, SplitInfo]
  max_seq_length: int
  do_lower_case: bool
  vocab_sha256: str
  vocab_size: int = 0
  compression: str = "none"
  has_text_b: bool = False
  format_version: int = 1
  multi_label: bool = False

  def to_dict(self) -> Dict[str, Any]:
    d = dataclasses.asdict(self)
    if not self.multi_label:
      del d["multi_label"]
    return d

  @property
  def label_width(self) -> int:
    """feature_spec's multi_labels: the number of labels of a multi-label task, else 0."""
    return len(self.labels) if self.multi_label else 0

  def feature_spec(self, labels: bool = True, guid: bool = True) -> Dict[str, Any]:
    """The parsing spec of this output's records (feature_spec with its sizes)."""
    return feature_spec(self.max_seq_length, labels=labels, guid=guid,
                        multi_labels=self.label_width)

  @classmethod
  def from_dict(cls, d: Dict[str, Any], source: str = "metadata") -> "DataMetadata":
    return _metadata_from_dict(cls, d, source, "preprocess")

  def split_files(self, data_dir: str, split: str) -> List[str]:
    """The shard files of `split`, sorted; a clear error when there are none."""
    if split not in self.splits:
      raise ValueError(
          f"{fileio.join(data_dir, METADATA_FILE)} has no split {split!r}; it has "
          f"{sorted(self.splits)}. Re-run preprocess with --splits including {split}.")
    info = self.splits[split]
    if info.files:
      files = [fileio.join(data_dir, name) for name in info.files]
      missing = [f for f in files if not fileio.exists(f)]
      if missing:
        raise FileNotFoundError(
            f"{len(missing)} shard(s) listed in {fileio.join(data_dir, METADATA_FILE)} are "
            f"missing, e.g. {missing[0]}; the preprocess output is incomplete. Re-run "
            "`bertline preprocess`.")
      return files
    files = sorted(fileio.glob(fileio.join(data_dir, info.file_pattern)))
    if not files:
      raise FileNotFoundError(
          f"No TFRecord shards match {self.splits[split].file_pattern!r} in {data_dir}; "
          "the preprocess output is incomplete. Re-run `bertline preprocess`.")
    return files

  def write(self, data_dir: str) -> str:
    path = fileio.join(data_dir, METADATA_FILE)
    fileio.write_json_atomic(path, self.to_dict())
    return path


def _read_json_metadata(data_dir: str, command: str) -> Tuple[Dict[str, Any], str]:
  path = fileio.join(data_dir, METADATA_FILE)
  if not fileio.exists(path):
    raise FileNotFoundError(
        f"{path} not found: {data_dir!r} is not a `bertline {command}` output directory "
        f"(or its run did not finish). Run `bertline {command} --output-dir ...` first.")
  try:
    return json.loads(fileio.read_text(path)), path
  except json.JSONDecodeError as e:
    raise ValueError(f"{path} is not valid JSON ({e}); re-run `bertline {command}`.") from e


def read_metadata(data_dir: str) -> DataMetadata:
  """Reads <data_dir>/metadata.json, explaining what to do when it is absent."""
  raw, path = _read_json_metadata(data_dir, "preprocess")
  if raw.get("kind") == PRETRAINING_KIND:
    raise ValueError(f"{path} is pre-training data (`bertline pretrain-data`): train a "
                     "classifier on `bertline preprocess` output, or pre-train on this with "
                     "`bertline pretrain`.")
  return DataMetadata.from_dict(raw, source=path)


def read_pretraining_metadata(data_dir: str) -> "PretrainingMetadata":
  """Reads a pretrain-data output's metadata.json, explaining what to do when it is absent."""
  raw, path = _read_json_metadata(data_dir, "pretrain-data")
  return PretrainingMetadata.from_dict(raw, source=path)


# --- A pre-training data dir (written by pretrain-data, read by pretrain) ---------------------
# create_pretraining_data.py's feature names, so its records and bertline's read alike.
MASKED_LM_POSITIONS = "masked_lm_positions"
MASKED_LM_IDS = "masked_lm_ids"
MASKED_LM_WEIGHTS = "masked_lm_weights"
NEXT_SENTENCE_LABELS = "next_sentence_labels"
PRETRAINING_KIND = "pretraining"
HELD_OUT_SPLIT = "heldout"


@dataclasses.dataclass
class PretrainingMetadata:
  """metadata.json of a pretrain-data output: what `bertline pretrain` reads.

  Attributes:
    splits: dict of split ("train", "heldout") to SplitInfo (num_examples: instances).
    settings: dict. The PretrainDataConfig it was made with (masking, pairs, seed, ...).
    counts: dict. What was read: lines, documents, sentences, tokens, and what
      was set aside (lines without tokens, with invalid UTF-8, single-sentence
      documents).
    max_seq_length, max_predictions_per_seq: int. Padded lengths of the features.
    masking: str. "static" (masks in the records) or "dynamic" (drawn when training).
    pairs: str. "none", "nsp" or "sop": what next_sentence_labels means.
    do_lower_case, vocab_sha256, vocab_size, compression: as in DataMetadata.
  """

  splits: Dict[str, SplitInfo]
  settings: Dict[str, Any]
  counts: Dict[str, int]
  max_seq_length: int
  max_predictions_per_seq: int
  masking: str
  pairs: str
  do_lower_case: bool
  vocab_sha256: str
  vocab_size: int
  compression: str = "none"
  kind: str = PRETRAINING_KIND
  format_version: int = 1

  def to_dict(self) -> Dict[str, Any]:
    return dataclasses.asdict(self)

  @classmethod
  def from_dict(cls, d: Dict[str, Any], source: str = "metadata") -> "PretrainingMetadata":
    if d.get("kind") != PRETRAINING_KIND:
      raise ValueError(f"{source} is not a `bertline pretrain-data` output (it is "
                       f"{'a preprocess output' if 'task' in d else 'something else'}): "
                       "give the --output-dir of `bertline pretrain-data`.")
    return _metadata_from_dict(cls, d, source, "pretrain-data")

  def split_files(self, data_dir: str, split: str) -> List[str]:
    if split not in self.splits:
      raise ValueError(f"{fileio.join(data_dir, METADATA_FILE)} has no split {split!r}; it has "
                       f"{sorted(self.splits)}.")
    return [fileio.join(data_dir, name) for name in self.splits[split].files]

  def write(self, data_dir: str) -> str:
    path = fileio.join(data_dir, METADATA_FILE)
    fileio.write_json_atomic(path, self.to_dict())
    return path


def pretraining_feature_spec(max_seq_length: int, max_predictions_per_seq: int,
                             static_masks: bool, pairs: bool) -> Dict[str, Any]:
  """tf.io.parse_example's spec of pretrain-data's records (TensorFlow imported here only)."""
  import tensorflow as tf  # schema is imported by --help paths; only readers call this
  spec = {name: tf.io.FixedLenFeature([max_seq_length], tf.int64)
          for name in SEQUENCE_FEATURES}
  if static_masks:
    spec[MASKED_LM_POSITIONS] = tf.io.FixedLenFeature([max_predictions_per_seq], tf.int64)
    spec[MASKED_LM_IDS] = tf.io.FixedLenFeature([max_predictions_per_seq], tf.int64)
    spec[MASKED_LM_WEIGHTS] = tf.io.FixedLenFeature([max_predictions_per_seq], tf.float32)
  if pairs:
    spec[NEXT_SENTENCE_LABELS] = tf.io.FixedLenFeature([1], tf.int64)
  return spec


# --- A training model_dir (written by train, read by evaluate/predict/export) --
CHECKPOINT_SUBDIR = "checkpoints"      # rolling checkpoints (keep N)
BEST_SUBDIR = "best"                   # the best checkpoint by the eval metric
CHECKPOINT_CHOICES = ("best", "latest")  # which checkpoint a stage reads (--checkpoint)
TRAIN_CONFIG_FILE = "train_config.json"
MODEL_CONFIG_FILE = "model_config.json"
LABELS_FILE = "labels.txt"
VOCAB_FILE = "vocab.txt"
DATA_METADATA_COPY = "data_metadata.json"
EVAL_HISTORY_FILE = "eval_history.jsonl"

# --- Evaluator outputs ---------------------------------------------------------
METRICS_FILE = "metrics.json"
# A multi-label model's decision thresholds, one per label, chosen after training (model_dir).
THRESHOLDS_FILE = "thresholds.json"
BLESSING_FILE = "blessing.json"
REPORT_FILE = "report.html"           # the evaluation to look at (evaluator/report.py)
PREDICTIONS_FILE = "test_results.tsv"

# --- Exported SavedModel (TF Serving layout: <export_dir>/<version>/) ----------
SIGNATURE_TEXT = "serving_default"
SIGNATURE_FEATURES = "serve_features"
SIGNATURE_EXAMPLES = "serve_examples"
# TF Serving's Classify API (method tensorflow/serving/classify): serialized
# tf.Example with the raw text features -> classes and scores. The key is the
# one tf.estimator gave its classification signature.
SIGNATURE_CLASSIFY = "classification"
CLASSIFY_METHOD_NAME = "tensorflow/serving/classify"
CLASSIFY_INPUTS = "inputs"      # TF Serving's kClassifyInputs
CLASSIFY_CLASSES = "classes"    # kClassifyOutputClasses
CLASSIFY_SCORES = "scores"      # kClassifyOutputScores
# A version's files (bertline/export_dir.py joins them): the SavedModel's graph
# and its assets, then what TF Serving reads beside it: its warmup requests
# (PredictionLog records it replays before serving a version) and the blessing.
SAVED_MODEL_PB = "saved_model.pb"
ASSETS_DIR = "assets"
ASSETS_EXTRA = "assets.extra"
WARMUP_REQUESTS = "tf_serving_warmup_requests"
ASSET_VOCAB = "vocab.txt"
ASSET_LABELS = "labels.txt"
ASSET_METADATA = "bertline_metadata.json"
# A quantized version (`export --quantize`): TF Lite flatbuffer in place of
# saved_model.pb + variables/, same signatures, same assets.
TFLITE_FILE = "model.tflite"
TOKENIZER_DIR = "tokenizer"  # the quantized version's tokenizer SavedModel
# serving_default's inputs and outputs (clients and `bertline run`'s check read these).
SERVING_TEXT_A = "text_a"
SERVING_TEXT_B = "text_b"
OUTPUT_PROBABILITIES = "probabilities"
OUTPUT_LABEL_ID = "label_id"
OUTPUT_LABEL = "label"
# A multi-label model's serving outputs: the labels over their thresholds, left-packed and
# padded with "" (string [b, n]), and the same as a multi-hot vector (int32 [b, n]).
OUTPUT_LABELS = "labels"
OUTPUT_PREDICTED = "predicted"


def is_version(name: str) -> bool:
  """A TF Serving version directory name: ASCII digits only.

  str.isdigit() also accepts "٣" (Arabic-Indic three) and "²", which int()
  reads differently or not at all, and TF Serving ignores.
  """
  return name.isascii() and name.isdigit()


# Written last by push: a reader that sees it sees a whole model.
PUSH_COMPLETE_MARKER = "_BERTLINE_PUSH_COMPLETE"

# --- preprocess bookkeeping -------------------------------------------------------
COUNTS_DIR = "_counts"  # per-shard counts a Beam job's workers write for its driver
REJECTED_PARTS_DIR = "_rejected_parts"  # per-shard rejected rows, gathered by the driver
# Each preprocess run writes everything (shards, rejected rows, counts) under
# its own <output_dir>/run-<id>/; metadata.json, written last, names the run.
RUN_DIR_PREFIX = "run-"
