"""Pretrained weights from every place users keep them, into BertEncoder/BertClassifier.

One entry point, one module per format:

  kind                          module           what it is
  ----------------------------  ---------------  ----------------------------------------
  google, albert, albert_zh     google.py        Google's TF1 BERT / ALBERT checkpoints,
                                                 run_classifier's outputs, albert_zh
  huggingface                   huggingface.py   model.safetensors + config.json
  bertline                      bertline_dir.py  a bertline model_dir

`resolve_pretrained(path)` finds the config, vocab and weights of any of
them; `load_pretrained(model, path)` translates the weights to the canonical
names of `modeling`'s `weight_map()` (Google's TF1 names), checks every shape
before any weight is assigned, requires every encoder weight to be loaded
(only a classifier head may be left new) and returns a LoadReport of what was
loaded, left new and unused.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
from typing import List, Optional

import numpy as np

from bertline import fileio, resources
from bertline.model import modeling, pretrainer
from bertline.model.checkpoints import bertline_dir, google, huggingface
from bertline.model.checkpoints.common import PretrainedFiles, Tensors
from bertline.model import model_config
from bertline.model.model_config import ModelConfig

log = logging.getLogger(__name__)

KINDS = google.KINDS + (huggingface.KIND, bertline_dir.KIND)
_FORMATS = {**{kind: google for kind in google.KINDS}, huggingface.KIND: huggingface,
            bertline_dir.KIND: bertline_dir}

# google-research/bert's validate_case_matches_checkpoint lists.
LOWER_CASE_MODELS = ("uncased_L-24_H-1024_A-16", "uncased_L-12_H-768_A-12",
                     "multilingual_L-12_H-768_A-12", "chinese_L-12_H-768_A-12")
CASED_MODELS = ("cased_L-12_H-768_A-12", "cased_L-24_H-1024_A-16",
                "multi_cased_L-12_H-768_A-12")

__all__ = ["KINDS", "LoadReport", "PretrainedFiles", "load_pretrained", "resolve_pretrained"]


# --- finding the files ---------------------------------------------------------------
def resolve_pretrained(path: str) -> PretrainedFiles:
  """Finds the config, vocab and weights of a pretrained model, whatever its format.

  Args:
    path: str. A directory (Google zip extracted, HF model dir, bertline
      model_dir) or a checkpoint prefix (".../bert_model.ckpt", ".../best/ckpt-3")
      or a .safetensors file; `builtin:minilm` is the packaged MiniLM.
  Returns:
    PretrainedFiles.
  Raises:
    FileNotFoundError / ValueError: naming the path and what was expected.
  """
  path = resources.resolve_checkpoint(path)
  if not path:
    raise ValueError("No pretrained model given: pass a checkpoint directory or prefix.")
  path = path.rstrip("/") if len(path) > 1 else path
  if fileio.isdir(path):
    return _resolve_dir(path)
  if path.endswith(".safetensors") and fileio.exists(path):
    return huggingface.resolve_file(path, os.path.dirname(path), [path])
  if path.endswith(".index") and fileio.exists(path):
    path = path[:-len(".index")]
  if fileio.exists(path + ".index"):
    return _resolve_prefix(path, os.path.dirname(path))
  if path.endswith((".bin", ".pt", ".pth")) and fileio.exists(path):
    raise ValueError(huggingface.PICKLE_MESSAGE.format(path=path,
                                                       dir=os.path.dirname(path) or "."))
  raise FileNotFoundError(
      f"No pretrained model at {path}: expected a directory holding a checkpoint "
      "(bert_model.ckpt.index, model.safetensors, or a bertline model_dir), or a checkpoint "
      "prefix such as .../bert_model.ckpt.")


def _resolve_dir(directory: str) -> PretrainedFiles:
  found = bertline_dir.resolve_dir(directory) or huggingface.resolve_dir(directory)
  if found:
    return found
  if google.prefixes(directory):  # Google TF1 (or a bare TF2 checkpoint of ours)
    return _resolve_prefix(google.latest_in(directory), directory, source=directory)
  raise FileNotFoundError(
      f"No recognised checkpoint in {directory}: expected bert_model.ckpt.index (Google's BERT "
      "zip), albert_model.ckpt.index, model.ckpt-N.index (run_classifier output), "
      "model.safetensors + config.json (Hugging Face), or model_config.json + best/ or "
      "checkpoints/ (a bertline model_dir).")


def _resolve_prefix(prefix: str, directory: str, source: Optional[str] = None) -> PretrainedFiles:
  names = google.variable_shapes(prefix)
  if bertline_dir.OBJECT_GRAPH in names:
    return bertline_dir.resolve_prefix(prefix, directory, source)
  kind = google.kind_of(names)
  if kind is None:
    raise ValueError(
        f"{prefix}: not a BERT/ALBERT checkpoint (no bert/embeddings/... or bert/encoder/... "
        f"variables; it has e.g. {sorted(names)[:5]}).")
  return google.resolve(prefix, directory, kind, source)


# --- the config and the checks before any work ----------------------------------------
def model_config_of(files: PretrainedFiles) -> ModelConfig:
  """The config, completed with what only the checkpoint says.

  albert_zh's layout, and the GELU that Google's TF1 code computes: for
  "google", "albert" and "albert_zh" checkpoints a config's "gelu" becomes
  "gelu_new" (the tanh approximation; see google.py). Hugging Face dirs and
  bertline model_dirs keep the activation as written (bertline's
  model_config.json already holds the resolved one).
  """
  config = ModelConfig.from_json_file(files.config_file)
  d = _FORMATS[files.kind].complete_config(files.kind, config.to_dict())
  if d == config.to_dict():
    return config
  return ModelConfig.from_dict(d, source=files.config_file)


def validate_for(files: PretrainedFiles, max_seq_length: Optional[int] = None,
                 vocab_file: Optional[str] = None,
                 do_lower_case: Optional[bool] = None) -> ModelConfig:
  """PretrainedFiles.validate_for: the data must fit the model; returns its config."""
  config = files.model_config()
  if max_seq_length is not None:
    model_config.check_sequence_length(max_seq_length, config.max_position_embeddings,
                                       files.config_file)
  given = vocab_file
  vocab_file = vocab_file or files.vocab_file
  if vocab_file:
    if not fileio.exists(vocab_file):
      raise FileNotFoundError(f"Vocab file {vocab_file} not found.")
    lines = vocab_size_of(vocab_file)
    if lines != config.vocab_size:
      raise ValueError(
          f"{vocab_file} has {lines} tokens but {files.config_file} says vocab_size "
          f"{config.vocab_size}: the vocabulary does not belong to this model. Use the "
          "vocab.txt released with the checkpoint (and re-run preprocess with it).")
  if (given and files.vocab_file and fileio.exists(files.vocab_file)
      and fileio.sha256_file(given) != fileio.sha256_file(files.vocab_file)):
    # Same size is not same vocabulary: the pretrained embedding rows are indexed
    # by the checkpoint's own token order.
    raise ValueError(
        f"{given} is not the vocabulary released with {files.source} ({files.vocab_file}): same "
        f"{lines} entries, other content or order, so token ids would index the wrong "
        "embeddings. Use the checkpoint's vocab.txt (and re-run preprocess with it).")
  if do_lower_case is not None:
    validate_case_matches_checkpoint(do_lower_case, files)
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


def read_canonical(files: PretrainedFiles) -> Tensors:
  """The checkpoint's weights under canonical names, read by its format's module."""
  return _FORMATS[files.kind].read(files)


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


_SHOWN_MISMATCHES = 3


def _shape_mismatch_message(files: PretrainedFiles, tensors: Tensors, mismatched) -> str:
  """Names the first few weights whose shapes differ, with a hint only where it is certain.

  A config that does not describe the weights (another hidden size, say)
  makes nearly every weight mismatch: the message names a few and counts the
  rest rather than listing hundreds.
  """
  shown = []
  for name, theirs, ours in mismatched[:_SHOWN_MISMATCHES]:
    hint = ""
    if (name.endswith("word_embeddings") and len(theirs) == len(ours) == 2
        and theirs[1] == ours[1]):
      hint = " (vocab_size differs: use the vocab.txt and config released with the checkpoint)"
    elif name in (modeling.HEAD_KERNEL, modeling.HEAD_BIAS) and theirs[-1:] != ours[-1:]:
      hint = " (the fine-tuned classifier has a different num_labels than labels.txt)"
    shown.append(f"{tensors.sources[name]}: checkpoint shape {list(theirs)} != model shape "
                 f"{list(ours)}{hint}")
  more = len(mismatched) - len(shown)
  return (f"Cannot load {files.source}: {len(mismatched)} weight(s) have other shapes than "
          f"{files.config_file} describes: " + "; ".join(shown)
          + (f"; and {more} more" if more else "")
          + ". Use the config released with these weights.")


def load_pretrained(model, path, check_config: bool = True) -> LoadReport:
  """Sets the weights of a BertEncoder, BertClassifier or BertPretrainer from a pretrained model.

  Args:
    model: BertEncoder or BertClassifier (built; its weights are assigned).
    path: str or PretrainedFiles. Anything resolve_pretrained accepts.
    check_config: bool. Also require the checkpoint's config to describe the
      model's architecture (shapes are always checked).
  Returns:
    LoadReport.
  Raises:
    ValueError: before any weight is assigned, on any shape mismatch (naming
      the variable), when no weight at all matched, or when an encoder weight
      (anything but the classifier head) is not in the checkpoint.
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
  mismatched = [(name, tensors.shapes[name], tuple(variable.shape))
                for name, variable in targets.items()
                if name in tensors.shapes and tuple(variable.shape) != tensors.shapes[name]]
  if mismatched:
    raise ValueError(_shape_mismatch_message(files, tensors, mismatched))
  loaded = [n for n in targets if n in tensors.shapes]
  if not loaded:
    raise ValueError(f"No weight of {files.source} matches the model; is it a BERT/ALBERT "
                     f"checkpoint? It holds e.g. {sorted(tensors.sources.values())[:5]}.")
  new = [n for n in targets if n not in tensors.shapes]
  # Only a head may start from scratch (the classifier's; the pre-training heads, created as
  # Google's when a checkpoint was saved without them): an encoder weight left new (a
  # checkpoint missing whole layers, or a config describing more than the file holds) would
  # train with random layers and look like a bad run.
  missing = [n for n in new if n not in (modeling.HEAD_KERNEL, modeling.HEAD_BIAS)
             and not n.startswith(pretrainer.PREFIX)]
  if missing:
    raise ValueError(
        f"{files.source} lacks {len(missing)} encoder weight(s) the model needs: "
        f"{', '.join(missing[:6])}{', ...' if len(missing) > 6 else ''}. The checkpoint is "
        f"incomplete or {files.config_file} describes a bigger model than it holds; use the "
        "config released with these weights.")
  for name in loaded:
    targets[name].assign(np.asarray(tensors.loaders[name](), dtype=np.float32))
  unused = sorted(tensors.unused + [tensors.sources[n] for n in tensors.shapes if n not in targets])
  report = LoadReport(loaded, new, unused, files.kind, files.source, tensors.skipped)
  log.info(report.summary())
  return report
