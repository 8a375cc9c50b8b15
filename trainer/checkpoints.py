"""Pretrained weights from every place users keep them, into BertEncoder/BertClassifier.

Formats (`resolve_pretrained` tells them apart; `load_pretrained` loads them):

  kind            what it is                             weights read with
  --------------  -------------------------------------  --------------------------
  "google"        Google's TF1 BERT zip (bert_model.ckpt  tf.train.load_checkpoint
                  + bert_config.json + vocab.txt), also
                  run_classifier.py's fine-tuned output
                  (model.ckpt-N with output_weights)
  "albert"        Google's ALBERT TF1 checkpoint          tf.train.load_checkpoint
                  (bert/encoder/transformer/group_0/...)
  "albert_zh"     brightmart's albert_zh (layer_shared,   tf.train.load_checkpoint
                  word_embeddings_2)
  "huggingface"   a directory with model.safetensors      safetensors (no pickle)
                  and config.json
  "bertline"      a bertline model_dir (model_config.json tf.train.Checkpoint
                  + best/ or checkpoints/)

Every format is translated to the canonical names of `modeling`'s
`weight_map()` (Google's TF1 names), shapes are checked for all weights before
any is assigned, and a LoadReport says what was loaded, what was left new (a
classifier head, usually) and what in the file went unused.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
from typing import Dict, List, Optional, Tuple

import numpy as np
import tensorflow as tf

from bertline import fileio, schema
from bertline.trainer import modeling
from bertline.trainer.model_config import ModelConfig

log = logging.getLogger(__name__)

KINDS = ("google", "albert", "albert_zh", "huggingface", "bertline")
_CONFIG_NAMES = ("bert_config.json", "albert_config.json", "config.json")
_VOCAB_NAMES = ("vocab.txt", "vocab_chinese.txt")

# google-research/bert's validate_case_matches_checkpoint lists.
LOWER_CASE_MODELS = ("uncased_L-24_H-1024_A-16", "uncased_L-12_H-768_A-12",
                     "multilingual_L-12_H-768_A-12", "chinese_L-12_H-768_A-12")
CASED_MODELS = ("cased_L-12_H-768_A-12", "cased_L-24_H-1024_A-16",
                "multi_cased_L-12_H-768_A-12")

# Names in TF1 checkpoints that are not model weights at all (optimizer slots,
# step and loss-scale counters): skipped, and reported only as a count.
_TF1_BOOKKEEPING = re.compile(r"(^|/)(adam_[mv]|Adam(_1)?|global_step|"
                              r"beta1_power|beta2_power|good_steps|loss_scale)(/|$)")


# Checkpoint kinds whose config's "gelu" means the tanh approximation
# 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))): google-research/bert's
# modeling.gelu (bert-tensorflow 1.0.4, which run_classifier.py fine-tunes and
# serves with), google-research/albert's and brightmart/albert_zh's all compute
# it so while their configs say "gelu". (Hugging Face's "gelu" is the exact erf
# form; its converted ALBERT configs say "gelu_new" for this reason.) The first
# released google-research/bert modeling.py had the erf form (commit bee6030
# changed it), so the earliest BERT zips were pre-trained with erf; the two
# differ by under 1e-3 per activation, and bertline follows the code that
# fine-tunes and serves these checkpoints now.
_TANH_GELU_KINDS = ("google", "albert", "albert_zh")


@dataclasses.dataclass
class PretrainedFiles:
  """What resolve_pretrained found.

  Attributes:
    kind: str. One of KINDS.
    weights: str. safetensors file(s) (comma-free list in `weight_files`) or a
      checkpoint prefix.
    config_file: str. The config that describes the weights.
    vocab_file: str or None. vocab.txt beside the weights, if any.
    source: str. The path the user gave.
    weight_files: list of str. All safetensors files (sharded HF models).
  """

  kind: str
  weights: str
  config_file: str
  vocab_file: Optional[str]
  source: str
  weight_files: List[str] = dataclasses.field(default_factory=list)

  def model_config(self) -> ModelConfig:
    """The config, completed with what only the checkpoint says.

    albert_zh's layout, and the GELU that Google's TF1 code computes: for
    "google", "albert" and "albert_zh" checkpoints a config's "gelu" becomes
    "gelu_new" (the tanh approximation), see _TANH_GELU_KINDS. Hugging Face
    dirs and bertline model_dirs keep the activation as written (bertline's
    model_config.json already holds the resolved one).
    """
    config = ModelConfig.from_json_file(self.config_file)
    d = config.to_dict()
    if self.kind == "albert_zh":
      d.update(model_type="albert", embedding_projection="word_projection")
    elif self.kind == "albert":
      d["model_type"] = "albert"
    if self.kind in _TANH_GELU_KINDS and d["hidden_act"] == "gelu":
      d["hidden_act"] = "gelu_new"
    if d == config.to_dict():
      return config
    return ModelConfig.from_dict(d, source=self.config_file)

  def validate_for(self, max_seq_length: Optional[int] = None,
                   vocab_file: Optional[str] = None,
                   do_lower_case: Optional[bool] = None) -> ModelConfig:
    """Checks that the data fits this model before any work; returns its config.

    Args:
      max_seq_length: int or None. The data's sequence length.
      vocab_file: str or None. The vocabulary the data was tokenized with
        (default: the one beside the weights).
      do_lower_case: bool or None. The tokenizer's casing.
    Raises:
      ValueError: saying which setting to change.
    """
    config = self.model_config()
    if max_seq_length is not None and max_seq_length > config.max_position_embeddings:
      raise ValueError(
          f"Cannot use sequence length {max_seq_length} because the model {self.source} was "
          f"only trained up to sequence length {config.max_position_embeddings} "
          f"(max_position_embeddings in {self.config_file}); lower --max-seq-length.")
    vocab_file = vocab_file or self.vocab_file
    if vocab_file:
      if not fileio.exists(vocab_file):
        raise FileNotFoundError(f"Vocab file {vocab_file} not found.")
      lines = vocab_size_of(vocab_file)
      if lines != config.vocab_size:
        raise ValueError(
            f"{vocab_file} has {lines} tokens but {self.config_file} says vocab_size "
            f"{config.vocab_size}: the vocabulary does not belong to this model. Use the "
            "vocab.txt released with the checkpoint (and re-run preprocess with it).")
    if do_lower_case is not None:
      validate_case_matches_checkpoint(do_lower_case, self)
    return config


def vocab_size_of(vocab_file: str) -> int:
  """Entries of a vocab.txt: its lines, as BERT's load_vocab counts them."""
  text = fileio.read_text(vocab_file)
  return len(text.splitlines())


def _model_name_candidates(files: PretrainedFiles) -> List[str]:
  names = [p for p in re.split(r"[/\\]", os.path.abspath(files.source)) if p]
  names += [p for p in re.split(r"[/\\]", os.path.abspath(files.weights)) if p]
  try:
    raw = json.loads(fileio.read_text(files.config_file))
    if isinstance(raw.get("_name_or_path"), str):
      names += raw["_name_or_path"].split("/")
  except (ValueError, OSError):
    pass
  return names


def validate_case_matches_checkpoint(do_lower_case: bool, files: PretrainedFiles) -> None:
  """google-research/bert's check that casing matches a known checkpoint's name.

  Also recognises Hugging Face names ending in -uncased / -cased.
  """
  for name in _model_name_candidates(files):
    lower = name in LOWER_CASE_MODELS or name.lower().endswith(("-uncased", "_uncased"))
    cased = name in CASED_MODELS or (name.lower().endswith(("-cased", "_cased"))
                                     and not name.lower().endswith(("-uncased", "_uncased")))
    if lower and not do_lower_case:
      raise ValueError(
          f"You passed do_lower_case=False but {files.source} looks like the uncased model "
          f"{name!r}, which was trained on lower-cased text. Use --do-lower-case (and "
          "re-run preprocess with it), or use a cased model.")
    if cased and do_lower_case:
      raise ValueError(
          f"You passed do_lower_case=True but {files.source} looks like the cased model "
          f"{name!r}. Use --no-do-lower-case (and re-run preprocess with it), or use an "
          "uncased model.")


# --- finding the files ---------------------------------------------------------------
def _first_existing(directory: str, names) -> Optional[str]:
  for name in names:
    path = fileio.join(directory, name)
    if fileio.exists(path):
      return path
  return None


def _tf1_prefixes(directory: str) -> List[str]:
  prefixes = [p[:-len(".index")] for p in fileio.glob(fileio.join(directory, "*.index"))]

  def step(p):
    m = re.search(r"-(\d+)$", p)
    return int(m.group(1)) if m else -1

  return sorted(prefixes, key=lambda p: (step(p), p))


def _latest_in(directory: str) -> Optional[str]:
  if not fileio.exists(directory):
    return None
  latest = tf.train.latest_checkpoint(directory)
  if latest:
    return latest
  prefixes = _tf1_prefixes(directory)
  return prefixes[-1] if prefixes else None


def _checkpoint_names(prefix: str) -> Dict[str, List[int]]:
  try:
    reader = tf.train.load_checkpoint(prefix)
  except (tf.errors.NotFoundError, tf.errors.DataLossError, ValueError) as e:
    raise ValueError(f"Cannot read checkpoint {prefix}: {e}") from e
  return reader.get_variable_to_shape_map()


def _kind_of_tf1(names) -> Optional[str]:
  if "_CHECKPOINTABLE_OBJECT_GRAPH" in names:
    return "bertline"
  if any(n.startswith("bert/encoder/transformer/") for n in names):
    return "albert"
  if any(n.startswith("bert/encoder/layer_shared/") for n in names):
    return "albert_zh"
  if any(n.startswith("bert/encoder/layer_") or n.startswith("bert/embeddings/") for n in names):
    return "google"
  return None


def _bertline_model_dir(path: str) -> Optional[str]:
  """The model_dir a bertline checkpoint path belongs to (itself or 1-2 levels up)."""
  d = path
  for _ in range(3):
    if fileio.exists(fileio.join(d, schema.MODEL_CONFIG_FILE)):
      return d
    d = os.path.dirname(d.rstrip("/"))
  return None


def resolve_pretrained(path: str) -> PretrainedFiles:
  """Finds the config, vocab and weights of a pretrained model, whatever its format.

  Args:
    path: str. A directory (Google zip extracted, HF model dir, bertline
      model_dir) or a checkpoint prefix (".../bert_model.ckpt", ".../best/ckpt-3")
      or a .safetensors file.
  Returns:
    PretrainedFiles.
  Raises:
    FileNotFoundError / ValueError: naming the path and what was expected.
  """
  if not path:
    raise ValueError("No pretrained model given: pass a checkpoint directory or prefix.")
  path = path.rstrip("/") if len(path) > 1 else path
  if tf.io.gfile.isdir(path):
    return _resolve_dir(path)
  if path.endswith(".safetensors") and fileio.exists(path):
    directory = os.path.dirname(path)
    return _huggingface(path, directory, [path])
  if path.endswith(".index") and fileio.exists(path):
    path = path[:-len(".index")]
  if fileio.exists(path + ".index"):
    return _resolve_prefix(path, os.path.dirname(path))
  if path.endswith((".bin", ".pt", ".pth")) and fileio.exists(path):
    raise ValueError(_PICKLE_MESSAGE.format(path=path, dir=os.path.dirname(path) or "."))
  raise FileNotFoundError(
      f"No pretrained model at {path}: expected a directory holding a checkpoint "
      "(bert_model.ckpt.index, model.safetensors, or a bertline model_dir), or a checkpoint "
      "prefix such as .../bert_model.ckpt.")


_PICKLE_MESSAGE = (
    "{path}: PyTorch pickle weights are not loaded (unpickling runs arbitrary code). Convert "
    "the model to safetensors once, where you trust it: python -c \"from transformers import "
    "AutoModel; m = AutoModel.from_pretrained('{dir}'); m.save_pretrained('{dir}', "
    "safe_serialization=True)\" and pass the directory again.")


def _resolve_dir(directory: str) -> PretrainedFiles:
  # bertline's own model_dir.
  if fileio.exists(fileio.join(directory, schema.MODEL_CONFIG_FILE)):
    prefix = (_latest_in(fileio.join(directory, schema.BEST_SUBDIR))
              or _latest_in(fileio.join(directory, schema.CHECKPOINT_SUBDIR))
              or _latest_in(directory))
    if prefix is None:
      raise FileNotFoundError(
          f"{directory} is a bertline model_dir without a checkpoint (nothing in "
          f"{schema.BEST_SUBDIR}/ or {schema.CHECKPOINT_SUBDIR}/); train it first.")
    return PretrainedFiles("bertline", prefix, fileio.join(directory, schema.MODEL_CONFIG_FILE),
                           _first_existing(directory, _VOCAB_NAMES), directory)
  # Hugging Face.
  safetensors = fileio.join(directory, "model.safetensors")
  index = fileio.join(directory, "model.safetensors.index.json")
  if fileio.exists(safetensors):
    return _huggingface(safetensors, directory, [safetensors])
  if fileio.exists(index):
    shards = sorted(set(json.loads(fileio.read_text(index))["weight_map"].values()))
    return _huggingface(index, directory, [fileio.join(directory, s) for s in shards])
  # Google TF1 (or a bare TF2 checkpoint of ours).
  prefixes = _tf1_prefixes(directory)
  if prefixes:
    latest = _latest_in(directory)
    return _resolve_prefix(latest or prefixes[-1], directory, source=directory)
  for name in ("pytorch_model.bin", "tf_model.h5", "flax_model.msgpack"):
    if fileio.exists(fileio.join(directory, name)):
      raise ValueError(_PICKLE_MESSAGE.format(path=fileio.join(directory, name), dir=directory)
                       if name.endswith(".bin") else
                       f"{directory} holds only {name}, which bertline does not read; save the "
                       "model as model.safetensors (save_pretrained(..., safe_serialization=True)).")
  raise FileNotFoundError(
      f"No recognised checkpoint in {directory}: expected bert_model.ckpt.index (Google's BERT "
      "zip), albert_model.ckpt.index, model.ckpt-N.index (run_classifier output), "
      "model.safetensors + config.json (Hugging Face), or model_config.json + best/ or "
      "checkpoints/ (a bertline model_dir).")


def _huggingface(weights: str, directory: str, files: List[str]) -> PretrainedFiles:
  config = fileio.join(directory, "config.json")
  if not fileio.exists(config):
    raise FileNotFoundError(f"{weights} has no config.json beside it; Hugging Face model "
                            "directories keep one (save_pretrained writes it).")
  return PretrainedFiles("huggingface", weights, config, _first_existing(directory, _VOCAB_NAMES),
                         directory, files)


def _resolve_prefix(prefix: str, directory: str, source: Optional[str] = None) -> PretrainedFiles:
  names = _checkpoint_names(prefix)
  kind = _kind_of_tf1(names)
  if kind is None:
    raise ValueError(
        f"{prefix}: not a BERT/ALBERT checkpoint (no bert/embeddings/... or bert/encoder/... "
        f"variables; it has e.g. {sorted(names)[:5]}).")
  if kind == "bertline":
    model_dir = _bertline_model_dir(directory)
    if model_dir is None:
      raise FileNotFoundError(
          f"{prefix} is an object-based (TF2) checkpoint without the {schema.MODEL_CONFIG_FILE} "
          "of a bertline model_dir beside it or above it; pass the model_dir instead.")
    return PretrainedFiles("bertline", prefix, fileio.join(model_dir, schema.MODEL_CONFIG_FILE),
                           _first_existing(model_dir, _VOCAB_NAMES), source or prefix)
  config = _first_existing(directory, _CONFIG_NAMES)
  if config is None:
    raise FileNotFoundError(
        f"No config beside checkpoint {prefix}: expected one of {', '.join(_CONFIG_NAMES)} in "
        f"{directory} (Google's zips ship bert_config.json / albert_config.json there).")
  return PretrainedFiles(kind, prefix, config, _first_existing(directory, _VOCAB_NAMES),
                         source or prefix)


# --- reading weights as canonical names -------------------------------------------------
_HF_BERT_LAYER = {
    "attention.self.query": "attention/self/query",
    "attention.self.key": "attention/self/key",
    "attention.self.value": "attention/self/value",
    "attention.output.dense": "attention/output/dense",
    "attention.output.LayerNorm": "attention/output/LayerNorm",
    "intermediate.dense": "intermediate/dense",
    "output.dense": "output/dense",
    "output.LayerNorm": "output/LayerNorm",
}
_HF_ALBERT_LAYER = {
    "attention.query": "attention_1/self/query",
    "attention.key": "attention_1/self/key",
    "attention.value": "attention_1/self/value",
    "attention.dense": "attention_1/output/dense",
    "attention.LayerNorm": "LayerNorm",
    "ffn": "ffn_1/intermediate/dense",
    "ffn_output": "ffn_1/intermediate/output/dense",
    "full_layer_layer_norm": "LayerNorm_1",
}
_HF_NORM_PARAMS = {"weight": "gamma", "gamma": "gamma", "bias": "beta", "beta": "beta"}


def _hf_canonical(name: str) -> Tuple[Optional[str], bool]:
  """HF parameter name -> (canonical name or None, whether to transpose)."""
  for prefix in ("bert.", "albert.", "model."):
    if name.startswith(prefix):
      name = name[len(prefix):]
      break
  module, _, param = name.rpartition(".")
  is_norm = module.endswith("LayerNorm") or module.endswith("layer_norm")
  if is_norm:
    suffix, transpose = _HF_NORM_PARAMS.get(param), False
  else:
    suffix = {"weight": "kernel", "bias": "bias"}.get(param)
    transpose = param == "weight"
  if suffix is None:
    return None, False
  m = re.fullmatch(r"embeddings\.(word|position|token_type)_embeddings", module)
  if m and param == "weight":
    return f"bert/embeddings/{m.group(1)}_embeddings", False
  if module == "embeddings.LayerNorm":
    return f"bert/embeddings/LayerNorm/{suffix}", False
  if module == "encoder.embedding_hidden_mapping_in":
    return f"bert/encoder/embedding_hidden_mapping_in/{suffix}", transpose
  if module in ("pooler.dense", "pooler"):
    return f"bert/pooler/dense/{suffix}", transpose
  if module == "classifier":
    return (modeling.HEAD_KERNEL if suffix == "kernel" else modeling.HEAD_BIAS,
            transpose)
  m = re.fullmatch(r"encoder\.layer\.(\d+)\.(.+)", module)
  if m and m.group(2) in _HF_BERT_LAYER:
    return f"bert/encoder/layer_{m.group(1)}/{_HF_BERT_LAYER[m.group(2)]}/{suffix}", transpose
  m = re.fullmatch(r"encoder\.albert_layer_groups\.(\d+)\.albert_layers\.(\d+)\.(.+)", module)
  if m and m.group(3) in _HF_ALBERT_LAYER:
    return (f"bert/encoder/transformer/group_{m.group(1)}/inner_group_{m.group(2)}/"
            f"{_HF_ALBERT_LAYER[m.group(3)]}/{suffix}", transpose)
  return None, False


_BERT_TO_ALBERT_INNER = {
    "attention/self/": "attention_1/self/",
    "attention/output/dense/": "attention_1/output/dense/",
    "attention/output/LayerNorm/": "LayerNorm/",
    "intermediate/dense/": "ffn_1/intermediate/dense/",
    "output/dense/": "ffn_1/intermediate/output/dense/",
    "output/LayerNorm/": "LayerNorm_1/",
}


def _tf1_canonical(name: str, kind: str) -> Tuple[Optional[str], bool]:
  if name == "output_weights":  # run_classifier's head: [num_labels, hidden]
    return modeling.HEAD_KERNEL, True
  if name == "output_bias":
    return modeling.HEAD_BIAS, False
  if kind == "albert_zh" and name.startswith("bert/encoder/layer_shared/"):
    inner = name[len("bert/encoder/layer_shared/"):]
    for bert, albert in _BERT_TO_ALBERT_INNER.items():
      if inner.startswith(bert):
        return ("bert/encoder/transformer/group_0/inner_group_0/" + albert +
                inner[len(bert):]), False
    return None, False
  if name.startswith("bert/"):
    return name, False
  return None, False


@dataclasses.dataclass
class _Tensors:
  """Canonical name -> (array loader, shape); `unused` holds names with no place."""

  shapes: Dict[str, Tuple[int, ...]]
  sources: Dict[str, str]          # canonical -> name in the file
  loaders: Dict[str, object]
  unused: List[str]
  skipped: int = 0


def _read_tf1(files: PretrainedFiles) -> _Tensors:
  reader = tf.train.load_checkpoint(files.weights)
  shapes, sources, loaders, unused, skipped = {}, {}, {}, [], 0
  for name, shape in sorted(reader.get_variable_to_shape_map().items()):
    if _TF1_BOOKKEEPING.search(name):
      skipped += 1
      continue
    canonical, transpose = _tf1_canonical(name, files.kind)
    if canonical is None:
      unused.append(name)
      continue
    shapes[canonical] = tuple(reversed(shape)) if transpose else tuple(shape)
    sources[canonical] = name
    loaders[canonical] = (lambda n=name, t=transpose:
                          reader.get_tensor(n).T if t else reader.get_tensor(n))
  return _Tensors(shapes, sources, loaders, unused, skipped)


def _read_safetensors(files: PretrainedFiles) -> _Tensors:
  from safetensors import safe_open
  shapes, sources, loaders, unused, skipped = {}, {}, {}, [], 0
  for path in files.weight_files:
    if "://" in path:  # safe_open maps local files only; remote ones are read whole
      from safetensors.numpy import load
      arrays = load(fileio.read_bytes(path))
      names = sorted(arrays)
      shape_of, get = (lambda n, a=arrays: a[n].shape), (lambda n, a=arrays: a[n])
    else:
      handle = safe_open(path, framework="numpy")
      names = sorted(handle.keys())
      shape_of = lambda n, h=handle: tuple(h.get_slice(n).get_shape())  # noqa: E731
      get = handle.get_tensor
    for name in names:
      if name.endswith("position_ids"):  # a buffer, not a weight
        skipped += 1
        continue
      canonical, transpose = _hf_canonical(name)
      if canonical is None:
        unused.append(name)
        continue
      shape = tuple(shape_of(name))
      shapes[canonical] = tuple(reversed(shape)) if transpose else shape
      sources[canonical] = name
      loaders[canonical] = (lambda g=get, n=name, t=transpose: g(n).T if t else g(n))
  return _Tensors(shapes, sources, loaders, unused, skipped)


def _read_bertline(files: PretrainedFiles) -> _Tensors:
  """Restores the checkpoint into a twin model and reads its weights by name."""
  config = files.model_config()
  shape_map = _checkpoint_names(files.weights)
  head = [s for n, s in shape_map.items() if n.startswith("model/head/bias/")]
  twin = (modeling.BertClassifier(config, num_labels=int(head[0][0])) if head
          else modeling.BertEncoder(config))
  status = tf.train.Checkpoint(model=twin).read(files.weights)
  status.expect_partial()
  try:
    status.assert_existing_objects_matched()
  except AssertionError as e:
    raise ValueError(f"{files.weights} does not match {files.config_file}: {e}") from e
  weights = twin.weight_map()
  arrays = {name: v.numpy() for name, v in weights.items()}
  return _Tensors({n: a.shape for n, a in arrays.items()}, {n: n for n in arrays},
                  {n: (lambda a=a: a) for n, a in arrays.items()}, [])


def read_canonical(files: PretrainedFiles) -> _Tensors:
  if files.kind == "huggingface":
    return _read_safetensors(files)
  if files.kind == "bertline":
    return _read_bertline(files)
  return _read_tf1(files)


# --- loading -------------------------------------------------------------------------
@dataclasses.dataclass
class LoadReport:
  """What load_pretrained did.

  Attributes:
    loaded: list of str. Model weights (canonical names) set from the file.
    new: list of str. Model weights the file did not have (left as initialised).
    unused: list of str. Weights in the file the model has no place for (names
      as in the file; optimizer slots are not listed).
    kind: str. The checkpoint's format.
    source: str. Where the weights came from.
    skipped: int. Entries of the file that are not weights (optimizer slots,
      counters, buffers).
  """

  loaded: List[str]
  new: List[str]
  unused: List[str]
  kind: str = ""
  source: str = ""
  skipped: int = 0

  def summary(self) -> str:
    def some(names):
      return ", ".join(names[:4]) + (", ..." if len(names) > 4 else "")
    return (f"Loaded {len(self.loaded)} weights from {self.source} ({self.kind}); "
            f"{len(self.new)} new" + (f" ({some(self.new)})" if self.new else "") +
            f"; {len(self.unused)} unused in the file" +
            (f" ({some(self.unused)})" if self.unused else "") +
            (f"; {self.skipped} optimizer/bookkeeping entries skipped" if self.skipped else "") +
            ".")


_CONFIG_FIELDS = ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                  "intermediate_size", "max_position_embeddings", "type_vocab_size",
                  "embedding_size", "num_hidden_groups", "inner_group_num", "model_type",
                  "hidden_act", "embedding_projection")


def load_pretrained(model, path, check_config: bool = True) -> LoadReport:
  """Sets the weights of a BertEncoder or BertClassifier from a pretrained model.

  Args:
    model: BertEncoder or BertClassifier (built; its weights are assigned).
    path: str or PretrainedFiles. Anything resolve_pretrained accepts.
    check_config: bool. Also require the checkpoint's config to describe the
      model's architecture (shapes are always checked).
  Returns:
    LoadReport.
  Raises:
    ValueError: on any shape mismatch (naming the variable) before any weight
      is assigned, or when no weight at all matched.
  """
  files = path if isinstance(path, PretrainedFiles) else resolve_pretrained(path)
  if check_config:
    theirs = files.model_config()
    diffs = [f"{k}: checkpoint {getattr(theirs, k)!r} vs model {getattr(model.config, k)!r}"
             for k in _CONFIG_FIELDS if getattr(theirs, k) != getattr(model.config, k)]
    if diffs:
      raise ValueError(f"{files.config_file} does not describe the model being loaded ("
                       + "; ".join(diffs) + "). Build the model from this config "
                       "(checkpoints.resolve_pretrained(path).model_config()).")
  tensors = read_canonical(files)
  targets = model.weight_map()
  errors = []
  for name, variable in targets.items():
    if name in tensors.shapes and tuple(variable.shape) != tensors.shapes[name]:
      hint = ""
      if name.endswith("word_embeddings"):
        hint = " (vocab_size differs: use the vocab.txt and config released with the checkpoint)"
      elif name == modeling.HEAD_KERNEL or name == modeling.HEAD_BIAS:
        hint = " (the fine-tuned classifier has a different num_labels than labels.txt)"
      errors.append(f"{tensors.sources[name]}: checkpoint shape {list(tensors.shapes[name])} "
                    f"!= model shape {list(variable.shape)}{hint}")
  if errors:
    raise ValueError(f"Cannot load {files.source}: " + "; ".join(errors))
  loaded = [n for n in targets if n in tensors.shapes]
  if not loaded:
    raise ValueError(f"No weight of {files.source} matches the model; is it a BERT/ALBERT "
                     f"checkpoint? It holds e.g. {sorted(tensors.sources.values())[:5]}.")
  for name in loaded:
    targets[name].assign(np.asarray(tensors.loaders[name](), dtype=np.float32))
  new = [n for n in targets if n not in tensors.shapes]
  unused = sorted(tensors.unused + [tensors.sources[n] for n in tensors.shapes if n not in targets])
  report = LoadReport(loaded, new, unused, files.kind, files.source, tensors.skipped)
  log.info(report.summary())
  return report
