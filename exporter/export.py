"""`bertline export`: a versioned SavedModel that serves raw text.

    bertline export --model-dir work/model --export-dir work/export

writes work/export/<version>/ (a numeric version: TF Serving's layout) with
four signatures:

* `serving_default`: text_a (and, for sentence-pair tasks, text_b) string [b]
  -> probabilities float32 [b, n], label_id int32 [b], label string [b]. A
  multi-label task's: probabilities (each label's sigmoid), predicted int32
  [b, n] (1 where a label's probability is at least its threshold, the
  model_dir's thresholds.json baked into the graph) and labels string [b, n]
  (those labels' names, in label order, then "").
  Tokenized in the graph by the preprocess stage's own BertTokenizer and
  pack_features, so a client in Java, Go or curl sends text and never
  re-implements WordPiece.
* `serve_features`: input_ids / input_mask / segment_ids int32 [b, s] -> the
  same outputs (run_classifier's serving_input_fn).
* `serve_examples`: serialized tf.Example string [b] (preprocess output) ->
  the same outputs.
* `classification`: TF Serving's Classify API (method
  tensorflow/serving/classify): `inputs`, serialized tf.Example string [b]
  with bytes features text_a (and text_b) -> `classes` string [b, n] (the
  label names) and `scores` float32 [b, n]. tf.saved_model.save writes every
  signature as a predict method (tensorflow/serving#1512), so the method name
  is set in saved_model.pb after saving and the fingerprint rewritten.

assets/ holds vocab.txt, labels.txt and bertline_metadata.json (data
metadata, metrics, train and model config); assets.extra/blessing.json the
blessing when the model_dir has one (push reads it), and
assets.extra/tf_serving_warmup_requests: PredictionLog records built from
real examples of the training data, which TF Serving replays at load and
`bertline push` replays in a clean process before pushing
(exporter/serving_check.py). The graph uses core TensorFlow and
tensorflow-text ops only. The version is written to a hidden
temporary directory and renamed into place: E/<version> is whole or absent.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import time
import uuid
from typing import Any, Dict, List, Optional

import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow.python.saved_model import fingerprinting_utils

from bertline import fileio, flags, records, schema
from bertline.configs import SettingError
from bertline.evaluator import scoring
from bertline.export_dir import ExportDir
from bertline.exporter import config
from bertline.exporter import huggingface
from bertline.exporter import quantize as quantize_lib
from bertline.exporter import serving_check
from bertline.exporter.config import ExportConfig
from bertline.preprocessing import features as features_lib
from bertline.preprocessing.tokenization import BertTokenizer, load_vocab

log = logging.getLogger("bertline.export")

EXPORT_FORMAT_VERSION = 1


class ServingModule(tf.Module):
  """The classifier, the in-graph tokenizer and the signatures TF Serving and Vertex AI call.

  serve_features: ids in; serve_examples: serialized tf.Examples of ids in;
  classify: TF Serving's Classify API on tf.Examples of raw text; and, built
  by `_text_signatures`, serve_text (raw text in, the default signature) and
  text_to_features (raw text -> the ids the model reads).
  """

  def __init__(self, classifier, tokenizer, labels: List[str], max_seq_length: int,
               has_text_b: bool, thresholds: Optional[List[float]] = None):
    super().__init__(name="bertline_serving")
    self.classifier = classifier
    self.tokenizer = tokenizer
    self.label_names = tf.constant(labels, tf.string)
    self.max_seq_length, self.has_text_b = max_seq_length, has_text_b
    # A multi-label model's per-label thresholds (None: a single-label model's softmax).
    self.thresholds = None if thresholds is None else tf.constant(thresholds, tf.float32)

  def _multi_label_outputs(self, logits) -> Dict[str, tf.Tensor]:
    probabilities = tf.sigmoid(tf.cast(logits, tf.float32))
    predicted = tf.cast(probabilities >= self.thresholds, tf.int32)
    # The called labels first, in label order (a stable sort on "not called"), then "".
    order = tf.argsort(1 - predicted, axis=-1, stable=True)
    names = tf.gather(self.label_names, order)
    called = tf.gather(predicted, order, batch_dims=1) > 0
    return {schema.OUTPUT_PROBABILITIES: probabilities, schema.OUTPUT_PREDICTED: predicted,
            schema.OUTPUT_LABELS: tf.where(called, names, tf.constant("", tf.string))}

  def _outputs(self, input_ids, input_mask, segment_ids) -> Dict[str, tf.Tensor]:
    # Cut the batch to its longest real sequence: exact (the mask hides the
    # rest) and much cheaper for short texts padded to max_seq_length.
    inputs = records.trim_batch({schema.INPUT_IDS: tf.cast(input_ids, tf.int32),
                                 schema.INPUT_MASK: tf.cast(input_mask, tf.int32),
                                 schema.SEGMENT_IDS: tf.cast(segment_ids, tf.int32)})
    out = self.classifier(inputs, training=False)
    if self.thresholds is not None:
      return self._multi_label_outputs(out["logits"])
    probabilities = out["probabilities"]
    label_id = tf.argmax(probabilities, axis=-1, output_type=tf.int32)
    return {schema.OUTPUT_PROBABILITIES: probabilities, schema.OUTPUT_LABEL_ID: label_id,
            schema.OUTPUT_LABEL: tf.gather(self.label_names, label_id)}

  def text_features(self, text_a, text_b=None) -> Dict[str, tf.Tensor]:
    """preprocess's tokenize + pack, verbatim: the same functions, the same graph ops."""
    ids_b = None if text_b is None else self.tokenizer.tokenize(text_b)
    return features_lib.pack_features(self.tokenizer.tokenize(text_a), ids_b,
                                      self.max_seq_length, self.tokenizer.cls_id,
                                      self.tokenizer.sep_id)

  def text_outputs(self, *texts) -> Dict[str, tf.Tensor]:
    f = self.text_features(*texts)
    return self._outputs(*(f[name] for name in schema.SEQUENCE_FEATURES))

  @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32, name=name)
                                for name in schema.SEQUENCE_FEATURES])
  def serve_features(self, input_ids, input_mask, segment_ids):
    return self._outputs(input_ids, input_mask, segment_ids)

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
  def serve_examples(self, examples):
    spec = schema.feature_spec(self.max_seq_length, labels=False, guid=False)
    parsed = records.parse_batch(examples, spec)
    return self._outputs(*(parsed[name] for name in schema.SEQUENCE_FEATURES))

  @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=schema.CLASSIFY_INPUTS)])
  def classify(self, inputs):
    """TF Serving's Classify API: tf.Examples of raw text -> classes and scores."""
    names = [schema.SERVING_TEXT_A] + ([schema.SERVING_TEXT_B] if self.has_text_b else [])
    # No default: an example without its text is an error the client sees.
    parsed = tf.io.parse_example(inputs, {name: tf.io.FixedLenFeature([], tf.string)
                                          for name in names})
    out = self.text_outputs(*(parsed[name] for name in names))
    classes = tf.tile(self.label_names[tf.newaxis], [tf.shape(inputs)[0], 1])
    return {schema.CLASSIFY_CLASSES: classes,
            schema.CLASSIFY_SCORES: out[schema.OUTPUT_PROBABILITIES]}


def _text_signatures(module: ServingModule) -> None:
  """serve_text and text_to_features, whose inputs are text_a (and text_b for a pair task).

  text_to_features is saved as a function too (not a signature): anyone can
  check, from the SavedModel alone, the ids the served model reads.
  """
  names = [schema.SERVING_TEXT_A] + ([schema.SERVING_TEXT_B] if module.has_text_b else [])
  texts = [tf.TensorSpec([None], tf.string, name=name) for name in names]
  module.text_to_features = tf.function(module.text_features, input_signature=texts)
  module.serve_text = tf.function(module.text_outputs, input_signature=texts)


def _serving_module(classifier, tokenizer, labels: List[str], max_seq_length: int,
                    has_text_b: bool, thresholds: Optional[List[float]] = None):
  """A ServingModule and its signatures by name, ready for tf.saved_model.save."""
  module = ServingModule(classifier, tokenizer, labels, max_seq_length, has_text_b, thresholds)
  _text_signatures(module)
  signatures = {
      schema.SIGNATURE_TEXT: module.serve_text.get_concrete_function(),
      schema.SIGNATURE_FEATURES: module.serve_features.get_concrete_function(),
      schema.SIGNATURE_EXAMPLES: module.serve_examples.get_concrete_function(),
      schema.SIGNATURE_CLASSIFY: module.classify.get_concrete_function(),
  }
  return module, signatures


def _set_method_names(path: str, methods: Dict[str, str]) -> None:
  """Sets SignatureDef method names in a saved model (TF2 writes them all as predict).

  TF Serving routes Classify requests only to a signature whose method is
  tensorflow/serving/classify; TensorFlow itself ignores the method when it
  loads. fingerprint.pb hashes saved_model.pb, so it is written again.
  """

  pb = os.path.join(path, "saved_model.pb")
  sm = saved_model_pb2.SavedModel()
  with open(pb, "rb") as f:
    sm.ParseFromString(f.read())
  for meta_graph in sm.meta_graphs:
    for name, method in methods.items():
      meta_graph.signature_def[name].method_name = method
  with open(pb, "wb") as f:
    f.write(sm.SerializeToString())
  if os.path.exists(os.path.join(path, "fingerprint.pb")):
    os.remove(os.path.join(path, "fingerprint.pb"))
    fingerprinting_utils.write_fingerprint(path)


# Ops of the graph that are not core TensorFlow: all from tensorflow-text, and
# all linked by stock TensorFlow Serving of the same release (test_export
# checks the exported graph against this list).
TF_TEXT_OPS = ("FastWordpieceTokenizeWithOffsets",)


def _next_version(export_dir: str) -> str:
  """Seconds since the epoch (TF Estimator's and TFX's convention), above any existing."""
  version = int(time.time())
  existing = [int(n) for n in os.listdir(export_dir) if schema.is_version(n)] if os.path.isdir(
      export_dir) else []
  return str(max([version] + [v + 1 for v in existing]))


def _metadata(loaded: scoring.LoadedModel, version: str, has_blessing: bool,
              training_key: str, thresholds: Optional[List[float]] = None) -> Dict[str, Any]:
  metrics_path = fileio.join(loaded.model_dir, schema.METRICS_FILE)
  metrics = json.loads(fileio.read_text(metrics_path)) if fileio.exists(metrics_path) else None
  meta = loaded.data_metadata
  outputs = ([schema.OUTPUT_PROBABILITIES, schema.OUTPUT_PREDICTED, schema.OUTPUT_LABELS]
             if meta.multi_label else
             [schema.OUTPUT_PROBABILITIES, schema.OUTPUT_LABEL_ID, schema.OUTPUT_LABEL])
  extra = {"multi_label": True, "thresholds": thresholds} if meta.multi_label else {}
  return {
      "format_version": EXPORT_FORMAT_VERSION,
      "version": int(version),
      # Where the weights came from (the pipeline warm-starts from it).
      "model_dir": (loaded.model_dir if fileio.is_remote(loaded.model_dir)
                    else os.path.abspath(loaded.model_dir)),
      "labels": loaded.labels,
      "max_seq_length": meta.max_seq_length,
      "do_lower_case": meta.do_lower_case,
      "has_text_b": meta.has_text_b,
      "signatures": {
          schema.SIGNATURE_TEXT: {
              "inputs": [schema.SERVING_TEXT_A] + (
                  [schema.SERVING_TEXT_B] if meta.has_text_b else []),
              "outputs": outputs},
          schema.SIGNATURE_FEATURES: {"inputs": list(schema.SEQUENCE_FEATURES)},
          schema.SIGNATURE_EXAMPLES: {"inputs": ["examples"]},
          schema.SIGNATURE_CLASSIFY: {
              "method": schema.CLASSIFY_METHOD_NAME, "inputs": [schema.CLASSIFY_INPUTS],
              "example_features": [schema.SERVING_TEXT_A] + (
                  [schema.SERVING_TEXT_B] if meta.has_text_b else []),
              "outputs": [schema.CLASSIFY_CLASSES, schema.CLASSIFY_SCORES]},
      },
      "data_metadata": meta.to_dict(),
      "metrics": metrics,
      "train_config": loaded.train_config,
      "model_config": loaded.model_config,
      "blessed": has_blessing,
      # What the model was trained from (the pipeline's key over data, settings and
      # starting point): a pipeline re-run with the same key pushes no duplicate.
      "training_key": training_key,
      "exported_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
      **extra,
  }


def _warmup_texts(loaded: scoring.LoadedModel, warmup_data: Optional[str], count: int):
  """Real examples for the warmup requests: the training data's (or --warmup-data's)."""

  recorded = (loaded.train_config or {}).get("data_dir") or ""
  data_dir = warmup_data or recorded
  where = (f"--warmup-data {data_dir}" if warmup_data else
           f"the training data {data_dir!r} ({schema.TRAIN_CONFIG_FILE}'s data_dir)")
  if not data_dir or not fileio.exists(fileio.join(data_dir, schema.METADATA_FILE)):
    raise FileNotFoundError(
        f"{where if data_dir else schema.TRAIN_CONFIG_FILE + ' names no data_dir'}: no preprocess "
        "output there to build TF Serving's warmup requests from; pass --warmup-data DIR, a "
        "`bertline preprocess` output of this model's task.")
  meta = schema.read_metadata(data_dir)
  if meta.vocab_sha256 != loaded.data_metadata.vocab_sha256:
    raise ValueError(f"{where} was tokenized with another vocab than {loaded.model_dir}; pass "
                     "--warmup-data with data preprocessed with the model's vocab.txt.")
  return serving_check.warmup_texts(data_dir, meta, load_vocab(loaded.vocab_file), count)


def _check_request(model_dir: str, export_dir: str, version: Optional[int], which: str,
                   blessing: Optional[str], warmup_data: Optional[str], warmup_examples: int,
                   quantize: str):
  """Everything knowable before loading the model: (the version's final path, the blessing)."""
  if fileio.is_remote(export_dir):
    raise ValueError(f"--export-dir {export_dir}: export writes locally (atomically); ship the "
                     "version with `bertline push --to gs://...`.")
  try:  # the command's checks, for a library caller too
    ExportConfig(model_dir, export_dir, version, which, blessing or "", warmup_data or "",
                 warmup_examples, quantize)
  except SettingError as e:
    raise e.named(flags.flag_namer(ExportConfig)) from None
  copy = fileio.join(model_dir, schema.DATA_METADATA_COPY)
  if fileio.exists(copy) and json.loads(fileio.read_text(copy)).get("kind") == \
      schema.PRETRAINING_KIND:
    raise ValueError(f"{model_dir} is a `bertline pretrain` model_dir (a masked LM, not a "
                     "classifier): fine-tune it with `bertline train --init-checkpoint "
                     f"{model_dir}`, or give --format huggingface for transformers.")
  version = str(int(version)) if version is not None else _next_version(export_dir)
  final = os.path.join(export_dir, version)
  if os.path.exists(final):
    raise FileExistsError(f"{final} exists: version {version} was already exported and is never "
                          "replaced. Omit --version (a new one is chosen) or pick another.")
  default = fileio.join(model_dir, schema.BLESSING_FILE)
  blessing = blessing or (default if fileio.exists(default) else None)
  if blessing and not fileio.exists(blessing):
    raise FileNotFoundError(f"--blessing {blessing} not found; it is the blessing.json written by "
                            "`bertline evaluate`.")
  return final, blessing


def _write_assets(version: ExportDir, loaded: scoring.LoadedModel, blessing: Optional[str]) -> None:
  """The vocabulary and labels beside the graph, and the blessing that travels with it."""
  os.makedirs(os.path.dirname(version.labels_file), exist_ok=True)
  shutil.copyfile(loaded.vocab_file, version.file(schema.ASSETS_DIR, schema.ASSET_VOCAB))
  with open(version.labels_file, "w", encoding="utf-8") as f:
    f.write("".join(label + "\n" for label in loaded.labels))
  if blessing:
    os.makedirs(os.path.dirname(version.blessing_file), exist_ok=True)
    with open(version.blessing_file, "wb") as f:
      f.write(fileio.read_bytes(blessing))


def export_model(model_dir: str, export_dir: str, version: Optional[int] = None,
                 which: str = "best", blessing: Optional[str] = None,
                 training_key: str = "", warmup_data: Optional[str] = None,
                 warmup_examples: int = 8, quantize: str = "none") -> str:
  """Exports model_dir's classifier to export_dir/<version>; returns that path.

  Args:
    model_dir: str. Training model_dir.
    export_dir: str. Local base directory of the versions (TF Serving's model base path).
    version: int or None. Version number (default: seconds since the epoch).
    which: "best" or "latest" checkpoint.
    blessing: str or None. blessing.json to store in assets.extra/ (default:
      <model_dir>/blessing.json when evaluate wrote one there).
    training_key: str. The pipeline's training key (components/steps.py), recorded in
      bertline_metadata.json.
    warmup_data: str or None. Preprocess output whose examples become TF Serving's
      warmup requests (default: the training data, train_config.json's data_dir).
    warmup_examples: int. How many of its examples the requests carry.
    quantize: "none" (a float32 SavedModel), "float16" or "int8": a TF Lite
      classifier beside a tokenizer SavedModel (exporter/quantize.py).
  Raises:
    FileExistsError: export_dir/<version> exists (an export is never replaced).
  """


  final, blessing = _check_request(model_dir, export_dir, version, which, blessing, warmup_data,
                                   warmup_examples, quantize)
  version = os.path.basename(final)
  loaded = scoring.load_model_dir(model_dir, which)
  meta = loaded.data_metadata
  if fileio.sha256_file(loaded.vocab_file) != meta.vocab_sha256:
    raise ValueError(f"{loaded.vocab_file} is not the vocab the training data was tokenized with "
                     f"({schema.DATA_METADATA_COPY}'s vocab_sha256); the model_dir is inconsistent.")
  if meta.multi_label and quantize != "none":
    raise ValueError(f"{model_dir} is a multi-label model: --quantize {quantize} is not built for "
                     "multi-label models yet; export it as float32 (--quantize none)")
  thresholds = (scoring.label_thresholds(model_dir, loaded.labels) if meta.multi_label
                else None)
  texts = _warmup_texts(loaded, warmup_data, warmup_examples)
  tokenizer = BertTokenizer(loaded.vocab_file, meta.do_lower_case)
  module, signatures = _serving_module(loaded.classifier, tokenizer, loaded.labels,
                                       meta.max_seq_length, meta.has_text_b, thresholds)

  os.makedirs(export_dir, exist_ok=True)
  # Hidden and not numeric: TF Serving never picks up a half-written version.
  tmp = os.path.join(export_dir, f".{version}.tmp-{uuid.uuid4().hex}")
  try:
    tf.saved_model.save(module, tmp, signatures=signatures)
    _set_method_names(tmp, {schema.SIGNATURE_CLASSIFY: schema.CLASSIFY_METHOD_NAME})
    metadata = _metadata(loaded, version, bool(blessing), training_key, thresholds)
    _write_assets(ExportDir(tmp), loaded, blessing)
    serving_check.write_warmup_requests(tmp, texts, meta.has_text_b)
    _check_export(tmp, meta.has_text_b)
    if quantize != "none":
      metadata.update(_quantize(tmp, module, signatures[schema.SIGNATURE_TEXT], quantize, texts,
                                meta.has_text_b))
    # Last: what push, score and the registry read of a version.
    fileio.write_text_atomic(ExportDir(tmp).metadata_file, fileio.to_json(metadata))
    _publish(tmp, final)
  finally:
    if os.path.exists(tmp):
      shutil.rmtree(tmp, ignore_errors=True)
  log.info("Exported %s to %s", model_dir, final)
  return final


def _publish(tmp: str, final: str) -> None:
  """Renames the finished version into place; a version another export published meanwhile is
  never replaced nor mixed (the rename fails on a non-empty directory)."""
  try:
    os.rename(tmp, final)
  except OSError as e:
    if e.errno not in (errno.ENOTEMPTY, errno.EEXIST):
      raise
    raise FileExistsError(
        f"{final} was published by another `bertline export` while this one ran: it is kept as "
        "it is and this export is dropped. Re-run without --version to take the next "
        "version.") from None


def _quantize(tmp: str, module, float_text, mode: str, texts, has_text_b: bool) -> Dict[str, Any]:
  """Turns the checked float32 SavedModel in `tmp` into a quantized version, in place.

  `float_text` is the float32 serving_default (in memory: _check_export has
  already loaded what was written). Returns the metadata to add: the mode, the
  signatures now served, and how far the quantized classifier is from the
  float32 one on the warmup texts.
  """

  float_bytes = sum(os.path.getsize(os.path.join(root, n))
                    for root, _, names in os.walk(tmp) for n in names)
  with open(os.path.join(tmp, schema.TFLITE_FILE), "wb") as f:
    f.write(quantize_lib.convert(tmp, mode))
  quantize_lib.save_tokenizer(module, os.path.join(tmp, quantize_lib.TOKENIZER_DIR))
  for name in ("saved_model.pb", "fingerprint.pb"):
    if os.path.exists(os.path.join(tmp, name)):
      os.remove(os.path.join(tmp, name))
  shutil.rmtree(os.path.join(tmp, "variables"))
  # TF Serving does not load this version; the warmup requests stay for push's serving
  # check, predict only (model.tflite has no Classify signature).
  serving_check.write_warmup_requests(tmp, texts, has_text_b, classify=False)
  # Loaded once, from what is left: the version answers without the float32 files.
  agreement = quantize_lib.agreement(float_text, quantize_lib.TFLiteModel(tmp), texts,
                                     has_text_b)
  text_inputs = [schema.SERVING_TEXT_A] + ([schema.SERVING_TEXT_B] if has_text_b else [])
  return {
      "quantization": {"mode": mode, "runtime": f"tflite (tensorflow {_tf_version()})",
                       "float32_export_bytes": float_bytes, **agreement},
      "signatures": {
          schema.SIGNATURE_TEXT: {"inputs": text_inputs,
                                  "outputs": [schema.OUTPUT_PROBABILITIES, schema.OUTPUT_LABEL_ID,
                                              schema.OUTPUT_LABEL],
                                  "served_by": f"{quantize_lib.TOKENIZER_DIR}/ then "
                                               f"{schema.TFLITE_FILE}"},
          schema.SIGNATURE_FEATURES: {"inputs": list(schema.SEQUENCE_FEATURES),
                                      "served_by": schema.TFLITE_FILE},
      },
  }


def _tf_version() -> str:
  return tf.__version__


def _check_export(path: str, has_text_b: bool) -> None:
  """Loads what was written and runs the text signature once: an export that
  does not load is never renamed into place."""

  loaded = tf.saved_model.load(path)
  missing = {schema.SIGNATURE_TEXT, schema.SIGNATURE_FEATURES, schema.SIGNATURE_EXAMPLES,
             schema.SIGNATURE_CLASSIFY} - set(loaded.signatures)
  if missing:
    raise AssertionError(f"export {path} lacks signature(s) {sorted(missing)}")
  args = {schema.SERVING_TEXT_A: tf.constant(["a smoke test"])}
  if has_text_b:
    args[schema.SERVING_TEXT_B] = tf.constant(["of the export"])
  out = loaded.signatures[schema.SIGNATURE_TEXT](**args)
  if out[schema.OUTPUT_PROBABILITIES].shape[0] != 1:
    raise AssertionError(f"export {path}: the text signature returned {out}")
  example = serving_check.text_example("a smoke test", "of the export" if has_text_b else None)
  out = loaded.signatures[schema.SIGNATURE_CLASSIFY](
      **{schema.CLASSIFY_INPUTS: tf.constant([example.SerializeToString()])})
  if out[schema.CLASSIFY_SCORES].shape[0] != 1:
    raise AssertionError(f"export {path}: the classification signature returned {out}")


def graph_op_names(path: str) -> List[str]:
  """Every op type in a SavedModel's graph and function library, sorted."""
  sm = saved_model_pb2.SavedModel()
  with open(os.path.join(path, "saved_model.pb"), "rb") as f:
    sm.ParseFromString(f.read())
  ops = set()
  for meta_graph in sm.meta_graphs:
    ops.update(node.op for node in meta_graph.graph_def.node)
    for fn in meta_graph.graph_def.library.function:
      ops.update(node.op for node in fn.node_def)
  library = {fn.signature.name for mg in sm.meta_graphs for fn in mg.graph_def.library.function}
  return sorted(ops - library)


def run(config: ExportConfig) -> str:
  """`bertline export` of `config` (exporter/config.py); returns <export_dir>/<version> (with
  --format huggingface: <export_dir>)."""
  if config.format == "huggingface":
    return huggingface.export(config.model_dir, config.export_dir)
  return export_model(config.model_dir, config.export_dir, config.version, config.checkpoint,
                      config.blessing or None, warmup_data=config.warmup_data or None,
                      warmup_examples=config.warmup_examples, quantize=config.quantize)


# The flags live with the config (exporter/config.py): `--help` answers without TensorFlow.
build_parser = config.export_parser


def main(argv: List[str]) -> int:
  parser = build_parser()
  path = run(flags.config_from_flags(ExportConfig, parser.parse_args(argv), parser))
  print(f"export: {path}")
  return 0
