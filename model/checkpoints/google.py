"""Google's TF1 checkpoints: BERT zips, run_classifier outputs, ALBERT and albert_zh.

  kind         what it is                                      told apart by
  -----------  ----------------------------------------------  -------------------------------
  "google"     Google's BERT zip (bert_model.ckpt +             bert/embeddings/..., bert/encoder/
               bert_config.json + vocab.txt), also              layer_N/...
               run_classifier's fine-tuned model.ckpt-N
               (with output_weights / output_bias)
  "albert"     Google's ALBERT checkpoint                       bert/encoder/transformer/group_0/...
  "albert_zh"  brightmart's albert_zh                           bert/encoder/layer_shared/...

Their names are the canonical ones already, but for run_classifier's head
(output_weights is the transposed kernel) and albert_zh's shared layer, whose
names are BERT's inside one ALBERT group: both maps derive from
`modeling.TransformerLayer`'s own name tables.
"""

from __future__ import annotations

import re
from typing import Any, Dict, List, Optional, Tuple

import tensorflow as tf

from bertline import fileio
from bertline.model import model_config, modeling
from bertline.model.checkpoints.common import VOCAB_NAMES, PretrainedFiles, Tensors, first_existing

KINDS = ("google", "albert", "albert_zh")
CONFIG_NAMES = model_config.GOOGLE_CONFIG_NAMES

# Names in TF1 checkpoints that are not model weights at all (optimizer slots,
# step and loss-scale counters): skipped, and reported only as a count.
_BOOKKEEPING = re.compile(r"(^|/)(adam_[mv]|Adam(_1)?|global_step|"
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
_TANH_GELU_KINDS = KINDS

# albert_zh keeps BERT's names for the one shared layer; ALBERT's names for the
# same sub-layers come from the layer itself.
_SHARED_LAYER = "bert/encoder/layer_shared/"
_ALBERT_GROUP_0 = "bert/encoder/transformer/group_0/inner_group_0/"
_BERT_TO_ALBERT = {modeling.TransformerLayer.BERT_NAMES[attr] + "/":
                   modeling.TransformerLayer.ALBERT_NAMES[attr] + "/"
                   for attr in modeling.TransformerLayer.BERT_NAMES}


def prefixes(directory: str) -> List[str]:
  """Checkpoint prefixes (X for X.index) in `directory`, oldest step first."""
  found = [p[:-len(".index")] for p in fileio.glob(fileio.join(directory, "*.index"))]

  def step(p):
    m = re.search(r"-(\d+)$", p)
    return int(m.group(1)) if m else -1

  return sorted(found, key=lambda p: (step(p), p))


def latest_in(directory: str) -> Optional[str]:
  """The checkpoint the `checkpoint` file names, else the highest-numbered prefix."""
  if not fileio.exists(directory):
    return None
  latest = tf.train.latest_checkpoint(directory)
  if latest:
    return latest
  found = prefixes(directory)
  return found[-1] if found else None


def variable_shapes(prefix: str) -> Dict[str, List[int]]:
  try:
    reader = tf.train.load_checkpoint(prefix)
  except (tf.errors.NotFoundError, tf.errors.DataLossError, ValueError) as e:
    raise ValueError(f"Cannot read checkpoint {prefix}: {e}") from e
  return reader.get_variable_to_shape_map()


def kind_of(names) -> Optional[str]:
  """The TF1 kind of a checkpoint's variable names (None: not a BERT/ALBERT checkpoint)."""
  if any(n.startswith("bert/encoder/transformer/") for n in names):
    return "albert"
  if any(n.startswith(_SHARED_LAYER) for n in names):
    return "albert_zh"
  if any(n.startswith("bert/encoder/layer_") or n.startswith("bert/embeddings/") for n in names):
    return "google"
  return None


def resolve(prefix: str, directory: str, kind: str, source: Optional[str]) -> PretrainedFiles:
  config = first_existing(directory, CONFIG_NAMES)
  if config is None:
    raise FileNotFoundError(
        f"No config beside checkpoint {prefix}: expected one of {', '.join(CONFIG_NAMES)} in "
        f"{directory} (Google's zips ship bert_config.json / albert_config.json there).")
  return PretrainedFiles(kind, prefix, config, first_existing(directory, VOCAB_NAMES),
                         source or prefix)


def complete_config(kind: str, d: Dict[str, Any]) -> Dict[str, Any]:
  """albert_zh's layout and Google's tanh GELU, which the configs do not say."""
  if kind == "albert_zh":
    d.update(model_type="albert", embedding_projection="word_projection")
  elif kind == "albert":
    d["model_type"] = "albert"
  if kind in _TANH_GELU_KINDS and d["hidden_act"] == "gelu":
    d["hidden_act"] = "gelu_new"
  return d


def canonical(name: str, kind: str) -> Tuple[Optional[str], bool]:
  """TF1 variable name -> (canonical name or None, whether to transpose)."""
  if name == "output_weights":  # run_classifier's head: [num_labels, hidden]
    return modeling.HEAD_KERNEL, True
  if name == "output_bias":
    return modeling.HEAD_BIAS, False
  if kind == "albert_zh" and name.startswith(_SHARED_LAYER):
    inner = name[len(_SHARED_LAYER):]
    for bert, albert in _BERT_TO_ALBERT.items():
      if inner.startswith(bert):
        return _ALBERT_GROUP_0 + albert + inner[len(bert):], False
    return None, False
  if name.startswith("bert/") or name.startswith("cls/"):  # cls/: the pre-training heads
    return name, False
  return None, False


def read(files: PretrainedFiles) -> Tensors:
  reader = tf.train.load_checkpoint(files.weights)
  tensors = Tensors()
  for name, shape in sorted(reader.get_variable_to_shape_map().items()):
    if _BOOKKEEPING.search(name):
      tensors.skipped += 1
      continue
    name_in_model, transpose = canonical(name, files.kind)
    if name_in_model is None:
      tensors.unused.append(name)
      continue
    tensors.add(name_in_model, name, shape, lambda n=name: reader.get_tensor(n), transpose)
  return tensors
