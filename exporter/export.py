"""`bertline export`: a versioned SavedModel that serves raw text.

    bertline export --model-dir work/model --export-dir work/export

writes work/export/<version>/ (a numeric version: TF Serving's layout) with
four signatures:

* `serving_default`: text_a (and, for sentence-pair tasks, text_b) string [b]
  -> probabilities float32 [b, n], label_id int32 [b], label string [b].
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

import argparse
import json
import logging
import os
import shutil
import time
import uuid
from typing import Any, Dict, List, Optional

from bertline import fileio, flags, records, schema
from bertline.evaluator import scoring

log = logging.getLogger("bertline.export")

EXPORT_FORMAT_VERSION = 1


def _serving_module(classifier, tokenizer, labels: List[str], max_seq_length: int,
                    has_text_b: bool):
  """A tf.Module holding the classifier, the tokenizer and the three signatures."""
  import tensorflow as tf

  from bertline.preprocessing import features as features_lib

  class ServingModule(tf.Module):

    def __init__(self):
      super().__init__(name="bertline_serving")
      self.classifier = classifier
      self.tokenizer = tokenizer
      self.label_names = tf.constant(labels, tf.string)

    def _outputs(self, input_ids, input_mask, segment_ids) -> Dict[str, tf.Tensor]:
      # Cut the batch to its longest real sequence: exact (the mask hides the
      # rest) and much cheaper for short texts padded to max_seq_length.
      inputs = records.trim_batch({schema.INPUT_IDS: tf.cast(input_ids, tf.int32),
                                   schema.INPUT_MASK: tf.cast(input_mask, tf.int32),
                                   schema.SEGMENT_IDS: tf.cast(segment_ids, tf.int32)})
      probabilities = self.classifier(inputs, training=False)["probabilities"]
      label_id = tf.argmax(probabilities, axis=-1, output_type=tf.int32)
      return {schema.OUTPUT_PROBABILITIES: probabilities, schema.OUTPUT_LABEL_ID: label_id,
              schema.OUTPUT_LABEL: tf.gather(self.label_names, label_id)}

    def text_features(self, text_a, text_b=None) -> Dict[str, tf.Tensor]:
      """preprocess's tokenize + pack, verbatim: the same functions, the same graph ops."""
      ids_b = None if text_b is None else self.tokenizer.tokenize(text_b)
      return features_lib.pack_features(self.tokenizer.tokenize(text_a), ids_b, max_seq_length,
                                        self.tokenizer.cls_id, self.tokenizer.sep_id)

    @tf.function(input_signature=[tf.TensorSpec([None, None], tf.int32, name=name)
                                  for name in schema.SEQUENCE_FEATURES])
    def serve_features(self, input_ids, input_mask, segment_ids):
      return self._outputs(input_ids, input_mask, segment_ids)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="examples")])
    def serve_examples(self, examples):
      spec = schema.feature_spec(max_seq_length, labels=False, guid=False)
      parsed = records.parse_batch(examples, spec)
      return self._outputs(*(parsed[name] for name in schema.SEQUENCE_FEATURES))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string,
                                                name=schema.CLASSIFY_INPUTS)])
    def classify(self, inputs):
      """TF Serving's Classify API: tf.Examples of raw text -> classes and scores."""
      names = [schema.SERVING_TEXT_A] + ([schema.SERVING_TEXT_B] if has_text_b else [])
      # No default: an example without its text is an error the client sees.
      parsed = tf.io.parse_example(inputs, {name: tf.io.FixedLenFeature([], tf.string)
                                            for name in names})
      f = self.text_features(*(parsed[name] for name in names))
      out = self._outputs(*(f[name] for name in schema.SEQUENCE_FEATURES))
      classes = tf.tile(self.label_names[tf.newaxis], [tf.shape(inputs)[0], 1])
      return {schema.CLASSIFY_CLASSES: classes,
              schema.CLASSIFY_SCORES: out[schema.OUTPUT_PROBABILITIES]}

  module = ServingModule()
  # text -> features as a saved function too (not a signature): anyone can
  # check, from the SavedModel alone, the ids the served model reads.
  if has_text_b:
    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=schema.SERVING_TEXT_A),
                                  tf.TensorSpec([None], tf.string, name=schema.SERVING_TEXT_B)])
    def text_to_features(text_a, text_b):
      return module.text_features(text_a, text_b)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=schema.SERVING_TEXT_A),
                                  tf.TensorSpec([None], tf.string, name=schema.SERVING_TEXT_B)])
    def serve_text(text_a, text_b):
      f = module.text_features(text_a, text_b)
      return module._outputs(*(f[name] for name in schema.SEQUENCE_FEATURES))
  else:
    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=schema.SERVING_TEXT_A)])
    def text_to_features(text_a):
      return module.text_features(text_a)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name=schema.SERVING_TEXT_A)])
    def serve_text(text_a):
      f = module.text_features(text_a)
      return module._outputs(*(f[name] for name in schema.SEQUENCE_FEATURES))
  module.text_to_features = text_to_features
  module.serve_text = serve_text
  signatures = {
      schema.SIGNATURE_TEXT: serve_text.get_concrete_function(),
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
  from tensorflow.core.protobuf import saved_model_pb2
  from tensorflow.python.saved_model import fingerprinting_utils

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
              training_key: str) -> Dict[str, Any]:
  metrics_path = fileio.join(loaded.model_dir, schema.METRICS_FILE)
  metrics = json.loads(fileio.read_text(metrics_path)) if fileio.exists(metrics_path) else None
  meta = loaded.data_metadata
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
              "outputs": [schema.OUTPUT_PROBABILITIES, schema.OUTPUT_LABEL_ID,
                          schema.OUTPUT_LABEL]},
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
  }


def _warmup_texts(loaded: scoring.LoadedModel, warmup_data: Optional[str], count: int):
  """Real examples for the warmup requests: the training data's (or --warmup-data's)."""
  from bertline.exporter import serving_check
  from bertline.preprocessing.tokenization import load_vocab

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
  import tensorflow as tf

  from bertline.preprocessing.tokenization import BertTokenizer

  if fileio.is_remote(export_dir):
    raise ValueError(f"--export-dir {export_dir}: export writes locally (atomically); ship the "
                     "version with `bertline push --to gs://...`.")
  if version is not None and (isinstance(version, bool) or int(version) < 0):
    raise ValueError(f"--version {version} must be a non-negative integer (TF Serving versions).")
  version = str(int(version)) if version is not None else _next_version(export_dir)
  final = os.path.join(export_dir, version)
  if os.path.exists(final):
    raise FileExistsError(f"{final} exists: version {version} was already exported and is never "
                          "replaced. Omit --version (a new one is chosen) or pick another.")
  blessing = blessing or (fileio.join(model_dir, schema.BLESSING_FILE)
                          if fileio.exists(fileio.join(model_dir, schema.BLESSING_FILE)) else None)
  if blessing and not fileio.exists(blessing):
    raise FileNotFoundError(f"--blessing {blessing} not found; it is the blessing.json written by "
                            "`bertline evaluate`.")

  from bertline.exporter import quantize as quantize_lib
  if quantize not in quantize_lib.MODES:
    raise ValueError(f"--quantize {quantize!r}: choose one of {', '.join(quantize_lib.MODES)}")
  if warmup_examples < 1:
    raise ValueError(f"--warmup-examples {warmup_examples} must be at least 1")
  loaded = scoring.load_model_dir(model_dir, which)
  meta = loaded.data_metadata
  if fileio.sha256_file(loaded.vocab_file) != meta.vocab_sha256:
    raise ValueError(f"{loaded.vocab_file} is not the vocab the training data was tokenized with "
                     f"({schema.DATA_METADATA_COPY}'s vocab_sha256); the model_dir is inconsistent.")
  texts = _warmup_texts(loaded, warmup_data, warmup_examples)
  tokenizer = BertTokenizer(loaded.vocab_file, meta.do_lower_case)
  module, signatures = _serving_module(loaded.classifier, tokenizer, loaded.labels,
                                       meta.max_seq_length, meta.has_text_b)

  os.makedirs(export_dir, exist_ok=True)
  # Hidden and not numeric: TF Serving never picks up a half-written version.
  tmp = os.path.join(export_dir, f".{version}.tmp-{uuid.uuid4().hex}")
  try:
    tf.saved_model.save(module, tmp, signatures=signatures)
    _set_method_names(tmp, {schema.SIGNATURE_CLASSIFY: schema.CLASSIFY_METHOD_NAME})
    assets = os.path.join(tmp, "assets")
    os.makedirs(assets, exist_ok=True)
    shutil.copyfile(loaded.vocab_file, os.path.join(assets, schema.ASSET_VOCAB))
    with open(os.path.join(assets, schema.ASSET_LABELS), "w", encoding="utf-8") as f:
      f.write("".join(label + "\n" for label in loaded.labels))
    metadata = _metadata(loaded, version, bool(blessing), training_key)
    if blessing:
      os.makedirs(os.path.join(tmp, schema.ASSETS_EXTRA), exist_ok=True)
      with open(os.path.join(tmp, schema.ASSETS_EXTRA, schema.BLESSING_FILE), "wb") as f:
        f.write(fileio.read_bytes(blessing))
    from bertline.exporter import serving_check
    serving_check.write_warmup_requests(tmp, texts, meta.has_text_b)
    _check_export(tmp, meta.has_text_b)
    if quantize != "none":
      metadata.update(_quantize(tmp, module, signatures[schema.SIGNATURE_TEXT], quantize, texts,
                                meta.has_text_b))
    with open(os.path.join(assets, schema.ASSET_METADATA), "w", encoding="utf-8") as f:
      f.write(fileio.to_json(metadata))
    os.rename(tmp, final)
  finally:
    if os.path.exists(tmp):
      shutil.rmtree(tmp, ignore_errors=True)
  log.info("Exported %s to %s", model_dir, final)
  return final


def _quantize(tmp: str, module, float_text, mode: str, texts, has_text_b: bool) -> Dict[str, Any]:
  """Turns the checked float32 SavedModel in `tmp` into a quantized version, in place.

  `float_text` is the float32 serving_default (in memory: _check_export has
  already loaded what was written). Returns the metadata to add: the mode, the
  signatures now served, and how far the quantized classifier is from the
  float32 one on the warmup texts.
  """
  from bertline.exporter import quantize as quantize_lib
  from bertline.exporter import serving_check

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
  import tensorflow as tf
  return tf.__version__


def _check_export(path: str, has_text_b: bool) -> None:
  """Loads what was written and runs the text signature once: an export that
  does not load is never renamed into place."""
  import tensorflow as tf

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
  from bertline.exporter import serving_check
  example = serving_check.text_example("a smoke test", "of the export" if has_text_b else None)
  out = loaded.signatures[schema.SIGNATURE_CLASSIFY](
      **{schema.CLASSIFY_INPUTS: tf.constant([example.SerializeToString()])})
  if out[schema.CLASSIFY_SCORES].shape[0] != 1:
    raise AssertionError(f"export {path}: the classification signature returned {out}")


def graph_op_names(path: str) -> List[str]:
  """Every op type in a SavedModel's graph and function library, sorted."""
  from tensorflow.core.protobuf import saved_model_pb2
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


def _version_arg(text: str) -> int:
  """--version: ASCII digits only (int() would also read "٣" as 3)."""
  if not schema.is_version(text):
    raise argparse.ArgumentTypeError(f"{text!r} is not a version: use ASCII digits, e.g. 3")
  return int(text)


def build_parser() -> flags.ArgumentParser:
  parser = flags.ArgumentParser(
      prog="bertline export",
      description="Write <export-dir>/<version>/, a SavedModel with signatures serving_default "
      "(raw text, tokenized in the graph), serve_features, serve_examples and classification "
      "(TF Serving's Classify API), plus TF Serving warmup requests built from real examples, "
      "for TF Serving or Vertex AI.",
      epilog="example:\n  bertline export --model-dir work/model --export-dir work/export")
  parser.add_argument("--model-dir", required=True, help="training model_dir")
  parser.add_argument("--export-dir", required=True,
                      help="local base directory of versions (TF Serving's model base path)")
  parser.add_argument("--version", type=_version_arg,
                      help="version number (default: seconds since the epoch); an existing "
                      "version is refused")
  parser.add_argument("--checkpoint", choices=("best", "latest"), default="best",
                      help="which checkpoint (default best, else latest)")
  parser.add_argument("--blessing", help="blessing.json to store with the export (default: "
                      "<model-dir>/blessing.json when present); push reads it")
  parser.add_argument("--warmup-data",
                      help="preprocess output whose first examples become TF Serving's warmup "
                      "requests (assets.extra/tf_serving_warmup_requests; default: the "
                      "training data named in the model_dir's train_config.json)")
  parser.add_argument("--warmup-examples", type=int, default=8,
                      help="how many examples the warmup requests carry (default 8)")
  parser.add_argument("--quantize", choices=("none", "float16", "int8"), default="none",
                      help="none (default): a float32 SavedModel for TF Serving / Vertex AI. "
                      "float16 or int8: the classifier as TensorFlow Lite (model.tflite, "
                      "int8 = dynamic-range: about 1/4 of the size and 2-3x faster on CPU) beside "
                      "a tokenizer SavedModel; served by bertline predict/score and TF Lite, "
                      "not by TF Serving")
  return parser


def main(argv: List[str]) -> int:
  args = build_parser().parse_args(argv)
  path = export_model(args.model_dir, args.export_dir, args.version, args.checkpoint,
                      args.blessing, warmup_data=args.warmup_data,
                      warmup_examples=args.warmup_examples, quantize=args.quantize)
  print(f"export: {path}")
  return 0
