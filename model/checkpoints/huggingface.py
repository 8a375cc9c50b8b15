"""Hugging Face directories: model.safetensors (or a sharded index) and config.json.

Only safetensors are read: PyTorch pickles run arbitrary code when loaded, so
a directory holding only pytorch_model.bin gets the one-line conversion to run
where the user trusts it. The per-layer names map onto the sub-layers of
`modeling.TransformerLayer`, whose own tables give the canonical names.
"""

from __future__ import annotations

import json
import re
from typing import Any, Dict, List, Optional, Tuple

from safetensors import SafetensorError, safe_open
from safetensors.numpy import load

from bertline import fileio
from bertline.model import modeling, pretrainer
from bertline.model.checkpoints.common import VOCAB_NAMES, PretrainedFiles, Tensors, first_existing

KIND = "huggingface"

PICKLE_MESSAGE = (
    "{path}: PyTorch pickle weights are not loaded (unpickling runs arbitrary code). Convert "
    "the model to safetensors once, where you trust it: python -c \"from transformers import "
    "AutoModel; m = AutoModel.from_pretrained('{dir}'); m.save_pretrained('{dir}', "
    "safe_serialization=True)\" and pass the directory again.")

# Hugging Face's module inside one layer -> our TransformerLayer sub-layer.
_BERT_LAYER = {
    "attention.self.query": "query", "attention.self.key": "key",
    "attention.self.value": "value", "attention.output.dense": "attention_output",
    "attention.output.LayerNorm": "attention_layer_norm", "intermediate.dense": "intermediate",
    "output.dense": "output", "output.LayerNorm": "output_layer_norm",
}
_ALBERT_LAYER = {
    "attention.query": "query", "attention.key": "key", "attention.value": "value",
    "attention.dense": "attention_output", "attention.LayerNorm": "attention_layer_norm",
    "ffn": "intermediate", "ffn_output": "output", "full_layer_layer_norm": "output_layer_norm",
}
_NORM_PARAMS = {"weight": "gamma", "gamma": "gamma", "bias": "beta", "beta": "beta"}


def resolve_dir(directory: str) -> Optional[PretrainedFiles]:
  """The Hugging Face model in `directory`, or None when it holds none."""
  safetensors = fileio.join(directory, "model.safetensors")
  index = fileio.join(directory, "model.safetensors.index.json")
  if fileio.exists(safetensors):
    return resolve_file(safetensors, directory, [safetensors])
  if fileio.exists(index):
    shards = sorted(set(json.loads(fileio.read_text(index))["weight_map"].values()))
    return resolve_file(index, directory, [fileio.join(directory, s) for s in shards])
  for name in ("pytorch_model.bin", "tf_model.h5", "flax_model.msgpack"):
    if fileio.exists(fileio.join(directory, name)):
      raise ValueError(PICKLE_MESSAGE.format(path=fileio.join(directory, name), dir=directory)
                       if name.endswith(".bin") else
                       f"{directory} holds only {name}, which bertline does not read; save the "
                       "model as model.safetensors (save_pretrained(..., safe_serialization=True)).")
  return None


def resolve_file(weights: str, directory: str, files: List[str]) -> PretrainedFiles:
  config = fileio.join(directory, "config.json")
  if not fileio.exists(config):
    raise FileNotFoundError(f"{weights} has no config.json beside it; Hugging Face model "
                            "directories keep one (save_pretrained writes it).")
  return PretrainedFiles(KIND, weights, config, first_existing(directory, VOCAB_NAMES),
                         directory, files)


def complete_config(kind: str, d: Dict[str, Any]) -> Dict[str, Any]:
  """A Hugging Face config says all (its activation names are exact)."""
  return d


# The pre-training heads: BertForPreTraining's cls.*, AlbertForPreTraining's predictions.* and
# sop_classifier.* -> Google's cls/ names (pretrainer.py). The pair weights are [2, hidden] on
# both sides, so they are not transposed.
_PRETRAINING_HEADS = {
    ("cls.predictions.transform.dense", "weight"): (pretrainer.MLM_DENSE_KERNEL, True),
    ("cls.predictions.transform.dense", "bias"): (pretrainer.MLM_DENSE_BIAS, False),
    ("cls.predictions.transform.LayerNorm", "weight"): (pretrainer.MLM_NORM_GAMMA, False),
    ("cls.predictions.transform.LayerNorm", "bias"): (pretrainer.MLM_NORM_BETA, False),
    ("cls.predictions", "bias"): (pretrainer.MLM_OUTPUT_BIAS, False),
    ("cls.seq_relationship", "weight"): (pretrainer.PAIR_WEIGHTS, False),
    ("cls.seq_relationship", "bias"): (pretrainer.PAIR_BIAS, False),
    ("predictions.dense", "weight"): (pretrainer.MLM_DENSE_KERNEL, True),
    ("predictions.dense", "bias"): (pretrainer.MLM_DENSE_BIAS, False),
    ("predictions.LayerNorm", "weight"): (pretrainer.MLM_NORM_GAMMA, False),
    ("predictions.LayerNorm", "bias"): (pretrainer.MLM_NORM_BETA, False),
    ("predictions", "bias"): (pretrainer.MLM_OUTPUT_BIAS, False),
    ("sop_classifier.classifier", "weight"): (pretrainer.PAIR_WEIGHTS, False),
    ("sop_classifier.classifier", "bias"): (pretrainer.PAIR_BIAS, False),
}
# The masked-LM decoder is the word embedding table (and its bias the head's bias), saved again.
_TIED_COPIES = ("cls.predictions.decoder.weight", "cls.predictions.decoder.bias",
                "predictions.decoder.weight", "predictions.decoder.bias")


def canonical(name: str) -> Tuple[Optional[str], bool]:
  """HF parameter name -> (canonical name or None, whether to transpose)."""
  head = _PRETRAINING_HEADS.get(tuple(name.rsplit(".", 1)))
  if head:
    return head
  for prefix in ("bert.", "albert.", "model."):
    if name.startswith(prefix):
      name = name[len(prefix):]
      break
  module, _, param = name.rpartition(".")
  if module.endswith("LayerNorm") or module.endswith("layer_norm"):
    suffix, transpose = _NORM_PARAMS.get(param), False
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
    return (modeling.HEAD_KERNEL if suffix == "kernel" else modeling.HEAD_BIAS), transpose
  m = re.fullmatch(r"encoder\.layer\.(\d+)\.(.+)", module)
  if m and m.group(2) in _BERT_LAYER:
    name = modeling.TransformerLayer.BERT_NAMES[_BERT_LAYER[m.group(2)]]
    return f"bert/encoder/layer_{m.group(1)}/{name}/{suffix}", transpose
  m = re.fullmatch(r"encoder\.albert_layer_groups\.(\d+)\.albert_layers\.(\d+)\.(.+)", module)
  if m and m.group(3) in _ALBERT_LAYER:
    name = modeling.TransformerLayer.ALBERT_NAMES[_ALBERT_LAYER[m.group(3)]]
    return (f"bert/encoder/transformer/group_{m.group(1)}/inner_group_{m.group(2)}/{name}/"
            f"{suffix}", transpose)
  return None, False


def read(files: PretrainedFiles) -> Tensors:
  """The weights of every safetensors file; a truncated or corrupted one is named."""
  try:
    return _read(files)
  except SafetensorError as e:
    raise ValueError(f"{files.weights} (or a shard beside it) is not a readable safetensors file "
                     f"({e}): it is truncated or corrupted. Copy or download it again.") from e


def _read(files: PretrainedFiles) -> Tensors:
  tensors = Tensors()
  for path in files.weight_files:
    if fileio.is_remote(path):  # safe_open maps local files only; remote ones are read whole
      arrays = load(fileio.read_bytes(path))
      names = sorted(arrays)
      shape_of, get = (lambda n, a=arrays: a[n].shape), (lambda n, a=arrays: a[n])
    else:
      handle = safe_open(path, framework="numpy")
      names = sorted(handle.keys())
      shape_of = lambda n, h=handle: tuple(h.get_slice(n).get_shape())  # noqa: E731
      get = handle.get_tensor
    for name in names:
      if name.endswith("position_ids") or name in _TIED_COPIES:  # a buffer; a tied copy
        tensors.skipped += 1
        continue
      name_in_model, transpose = canonical(name)
      if name_in_model is None:
        tensors.unused.append(name)
        continue
      tensors.add(name_in_model, name, shape_of(name), lambda g=get, n=name: g(n), transpose)
  return tensors


# --- writing: a canonical name -> its BertFor* parameter name ----------------------------------
_GOOGLE_TO_HF_LAYER = {modeling.TransformerLayer.BERT_NAMES[ours]: theirs
                       for theirs, ours in _BERT_LAYER.items()}
_HF_PARAM = {"kernel": "weight", "bias": "bias", "gamma": "weight", "beta": "bias"}


def hf_name(name: str) -> Tuple[str, bool]:
  """A BERT weight's canonical name -> (its name in transformers' BertFor* models, whether to
  transpose). The exact inverse of `canonical`, which checks it."""
  head = next((f"{module}.{param}" for (module, param), (ours, _) in _PRETRAINING_HEADS.items()
               if ours == name and module.startswith("cls.")), None)
  if head is None:
    scope, _, param = name.rpartition("/")
    m = re.fullmatch(r"bert/encoder/layer_(\d+)/(.+)", scope)
    if name in (modeling.HEAD_KERNEL, modeling.HEAD_BIAS):
      head = f"classifier.{_HF_PARAM[param]}"
    elif m:
      head = f"bert.encoder.layer.{m.group(1)}.{_GOOGLE_TO_HF_LAYER[m.group(2)]}.{_HF_PARAM[param]}"
    elif scope == "bert/embeddings/LayerNorm":
      head = f"bert.embeddings.LayerNorm.{_HF_PARAM[param]}"
    elif scope == "bert/embeddings":  # param: word_embeddings, position_..., token_type_...
      head = f"bert.embeddings.{param}.weight"
    elif scope == "bert/pooler/dense":
      head = f"bert.pooler.dense.{_HF_PARAM[param]}"
    else:
      raise ValueError(f"{name}: no Hugging Face BERT parameter holds this weight")
  back, transpose = canonical(head)
  if back != name:  # the writer and the reader must agree, name for name
    raise AssertionError(f"{name} -> {head} reads back as {back}")
  return head, transpose
