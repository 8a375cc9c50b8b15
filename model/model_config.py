"""The model's hyper-parameters, read from any of the config files users have.

Google's bert_config.json, ALBERT's albert_config.json and a Hugging Face
config.json describe the same network with (mostly) the same keys; they differ
in a few names (HF's `layer_norm_eps`, ALBERT's `embedding_size`) and in the
extra keys they carry (Google's Chinese config has `pooler_fc_size`,
`pooler_type`, `directionality`, ...). `ModelConfig` reads all of them, ignores
the extra keys that do not change the network, and rejects values it cannot
build (an unknown activation, heads that do not divide the hidden size).
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Dict, Optional

from bertline import fileio, schema

# hidden_act names -> the function modeling.py builds. "gelu" is BERT's exact
# erf form (HF's "gelu" too); the tanh approximation has its own names.
ACTIVATIONS = ("gelu", "gelu_new", "gelu_pytorch_tanh", "gelu_fast", "relu", "tanh",
               "swish", "silu")
MODEL_TYPES = ("bert", "albert")
# How ALBERT's factorised embeddings reach the hidden size:
#   "after_layer_norm": Google's ALBERT and HF: word+position+type embeddings of
#     embedding_size, LayerNorm, then a dense E->H (embedding_hidden_mapping_in).
#   "word_projection": brightmart's albert_zh: only the word embedding is
#     projected (E->H, no bias); position/type embeddings and LayerNorm are H.
EMBEDDING_PROJECTIONS = ("after_layer_norm", "word_projection")

# Keys real config files carry that do not change the network.
_IGNORED_KEYS = frozenset({
    "pooler_fc_size", "pooler_num_attention_heads", "pooler_num_fc_layers",
    "pooler_size_per_head", "pooler_type", "directionality", "architectures",
    "_name_or_path", "transformers_version", "gradient_checkpointing", "use_cache",
    "pad_token_id", "bos_token_id", "eos_token_id", "torch_dtype", "dtype",
    "position_embedding_type", "classifier_dropout", "classifier_dropout_prob",
    "id2label", "label2id", "finetuning_task", "output_past", "ln_type", "net_structure_type",
    "gap_size", "num_memory_blocks", "down_scale_factor", "is_decoder", "add_cross_attention",
    "tie_word_embeddings", "problem_type", "chunk_size_feed_forward", "return_dict",
    "output_hidden_states", "output_attentions", "torchscript", "pruned_heads",
    "initializer_factor",
})
# Ignored keys whose other values would mean another network: refused then.
_REQUIRED_VALUES = {
    "position_embedding_type": ("absolute",),
    "ln_type": ("postln",),          # albert_zh
    "net_structure_type": (0,),      # google-research/albert's extras
    "gap_size": (0,),
    "num_memory_blocks": (0,),
    "down_scale_factor": (1,),
    "is_decoder": (False,),
    "add_cross_attention": (False,),
}
# Other names for our keys.
_ALIASES = {"layer_norm_epsilon": "layer_norm_eps", "hidden_activation": "hidden_act"}


# The config a checkpoint directory holds, in the order they are looked for: bertline's own,
# Google's (BERT, then ALBERT's) and Hugging Face's.
GOOGLE_CONFIG_NAMES = ("bert_config.json", "albert_config.json", "config.json")
CONFIG_FILE_NAMES = (schema.MODEL_CONFIG_FILE,) + GOOGLE_CONFIG_NAMES


def config_file_in(directory: str) -> Optional[str]:
  """The first of CONFIG_FILE_NAMES in `directory`, or None."""
  for name in CONFIG_FILE_NAMES:
    path = fileio.join(directory, name)
    if fileio.exists(path):
      return path
  return None


def check_sequence_length(max_seq_length: int, max_positions: int, config_file: str,
                          key: str = "--max-seq-length") -> None:
  """The one "does the data fit the model" check (google-research/bert's own sentence).

  `key` names the setting as the caller's user gave it: a flag, or a run
  config's key.
  """
  if max_seq_length > max_positions:
    raise ValueError(
        f"Cannot use sequence length {max_seq_length} because the model was only trained up to "
        f"sequence length {max_positions} (max_position_embeddings in {config_file}); set {key} "
        f"to at most {max_positions}.")

@dataclasses.dataclass
class ModelConfig:
  """BERT / ALBERT hyper-parameters (google-research/bert's BertConfig, typed).

  Attributes:
    vocab_size: int. Rows of the word embedding; must equal the vocab.txt lines.
    hidden_size: int. Width of every transformer layer.
    num_hidden_layers: int. Transformer layers (applications, for ALBERT).
    num_attention_heads: int. Heads per layer; must divide hidden_size.
    intermediate_size: int. Width of the feed-forward layer.
    hidden_act: str. Feed-forward activation, one of ACTIVATIONS.
    hidden_dropout_prob: float. Dropout on embeddings and layer outputs.
    attention_probs_dropout_prob: float. Dropout on attention probabilities.
    max_position_embeddings: int. Longest sequence the model can read.
    type_vocab_size: int. Number of segment ids.
    initializer_range: float. Stddev of the truncated-normal initializers.
    layer_norm_eps: float. LayerNorm epsilon (BERT's 1e-12).
    embedding_size: int or None. ALBERT's factorised embedding width (None:
      hidden_size, no projection).
    num_hidden_groups: int. ALBERT: groups of layers with distinct weights;
      the num_hidden_layers applications share them in order.
    inner_group_num: int. ALBERT: transformer layers inside each group.
    model_type: str. "bert" or "albert".
    embedding_projection: str. ALBERT only, one of EMBEDDING_PROJECTIONS.
  """

  vocab_size: int
  hidden_size: int = 768
  num_hidden_layers: int = 12
  num_attention_heads: int = 12
  intermediate_size: int = 3072
  hidden_act: str = "gelu"
  hidden_dropout_prob: float = 0.1
  attention_probs_dropout_prob: float = 0.1
  max_position_embeddings: int = 512
  type_vocab_size: int = 2
  initializer_range: float = 0.02
  layer_norm_eps: float = 1e-12
  embedding_size: Optional[int] = None
  num_hidden_groups: int = 1
  inner_group_num: int = 1
  model_type: str = "bert"
  embedding_projection: str = "after_layer_norm"

  def __post_init__(self):
    self.validate()

  # --- derived -----------------------------------------------------------------
  @property
  def is_albert(self) -> bool:
    return self.model_type == "albert"

  @property
  def embedding_width(self) -> int:
    """Width of the embedding tables that feed the LayerNorm."""
    if self.embedding_size is None or self.embedding_projection == "word_projection":
      return self.hidden_size
    return self.embedding_size

  @property
  def word_embedding_width(self) -> int:
    return self.hidden_size if self.embedding_size is None else self.embedding_size

  @property
  def has_embedding_projection(self) -> bool:
    return self.embedding_size is not None and self.embedding_size != self.hidden_size

  @property
  def head_size(self) -> int:
    return self.hidden_size // self.num_attention_heads

  def group_of_layer(self, layer: int) -> int:
    """ALBERT's group for the layer-th application (its modeling.py's rule)."""
    return int(layer / (self.num_hidden_layers / self.num_hidden_groups))

  # --- validation --------------------------------------------------------------
  def validate(self, source: str = "model config") -> None:
    """Raises ValueError naming the key and the fix for values we cannot build."""
    for key in ("vocab_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                "intermediate_size", "max_position_embeddings", "type_vocab_size",
                "num_hidden_groups", "inner_group_num"):
      value = getattr(self, key)
      if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{source}: {key} must be a positive integer, got {value!r}.")
    if self.hidden_act not in ACTIVATIONS:
      raise ValueError(f"{source}: unknown hidden_act {self.hidden_act!r}; use one of "
                       f"{', '.join(ACTIVATIONS)} ('gelu' is BERT's exact erf form).")
    if self.hidden_size % self.num_attention_heads:
      raise ValueError(
          f"{source}: hidden_size {self.hidden_size} is not a multiple of num_attention_heads "
          f"{self.num_attention_heads}; every head must get hidden_size / heads dimensions.")
    for key in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
      value = getattr(self, key)
      if not 0.0 <= float(value) < 1.0:
        raise ValueError(f"{source}: {key} must be in [0, 1), got {value!r}.")
    if not self.initializer_range > 0:
      raise ValueError(f"{source}: initializer_range must be > 0, got {self.initializer_range}.")
    if not self.layer_norm_eps > 0:
      raise ValueError(f"{source}: layer_norm_eps must be > 0, got {self.layer_norm_eps}.")
    if self.model_type not in MODEL_TYPES:
      raise ValueError(f"{source}: model_type {self.model_type!r} is not supported; "
                       f"use one of {MODEL_TYPES}.")
    if self.embedding_projection not in EMBEDDING_PROJECTIONS:
      raise ValueError(f"{source}: embedding_projection must be one of "
                       f"{EMBEDDING_PROJECTIONS}, got {self.embedding_projection!r}.")
    if self.embedding_size is not None and (
        isinstance(self.embedding_size, bool) or not isinstance(self.embedding_size, int)
        or self.embedding_size < 1):
      raise ValueError(f"{source}: embedding_size must be a positive integer, "
                       f"got {self.embedding_size!r}.")
    if self.model_type == "bert":
      if self.has_embedding_projection:
        raise ValueError(f"{source}: embedding_size {self.embedding_size} != hidden_size "
                         f"{self.hidden_size} is ALBERT's factorisation; set "
                         "model_type 'albert' (or drop embedding_size).")
      if self.num_hidden_groups != 1 or self.inner_group_num != 1:
        raise ValueError(f"{source}: num_hidden_groups/inner_group_num are ALBERT's; "
                         "set model_type 'albert' for cross-layer sharing.")
    if self.num_hidden_groups > self.num_hidden_layers:
      raise ValueError(f"{source}: num_hidden_groups {self.num_hidden_groups} exceeds "
                       f"num_hidden_layers {self.num_hidden_layers}.")

  # --- (de)serialisation -------------------------------------------------------
  def to_dict(self) -> Dict[str, Any]:
    return dataclasses.asdict(self)

  def to_json_string(self) -> str:
    return json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n"

  def write(self, path: str) -> None:
    fileio.write_text_atomic(path, self.to_json_string())

  @classmethod
  def from_dict(cls, d: Dict[str, Any], source: str = "model config") -> "ModelConfig":
    """Builds from any of the known config layouts.

    Unknown keys are an error (a typo must not silently fall back to a
    default) except those real files carry that do not change the network.
    """
    if not isinstance(d, dict):
      raise ValueError(f"{source}: expected a JSON object, got {type(d).__name__}.")
    known = {f.name for f in dataclasses.fields(cls)}
    d = {_ALIASES.get(k, k): v for k, v in d.items()}
    model_type = str(d.get("model_type", "")).lower()
    # ALBERT's config files do not always say so; their keys do.
    albertish = any(k in d for k in ("embedding_size", "num_hidden_groups", "inner_group_num"))
    if not model_type:
      model_type = "albert" if albertish else "bert"
    d["model_type"] = model_type
    unknown = sorted(k for k in d if k not in known and k not in _IGNORED_KEYS)
    if unknown:
      raise ValueError(f"{source}: unknown key(s) {unknown}. Known keys: {sorted(known)} "
                       "(and the extra keys of Google's and Hugging Face's configs).")
    for key, allowed in _REQUIRED_VALUES.items():
      if key in d and d[key] not in allowed:
        raise ValueError(f"{source}: {key} {d[key]!r} describes a network bertline does not "
                         f"build (it builds {key} {allowed[0]!r}: BERT/ALBERT's).")
    if "vocab_size" not in d:
      raise ValueError(f"{source}: missing key 'vocab_size'.")
    kwargs = {k: v for k, v in d.items() if k in known}
    for key in ("hidden_dropout_prob", "attention_probs_dropout_prob", "initializer_range",
                "layer_norm_eps"):
      if key in kwargs and isinstance(kwargs[key], int) and not isinstance(kwargs[key], bool):
        kwargs[key] = float(kwargs[key])
    if model_type == "bert" and kwargs.get("embedding_size") == kwargs.get("hidden_size", 768):
      kwargs["embedding_size"] = None
    try:
      config = cls.__new__(cls)
      for f in dataclasses.fields(cls):
        if f.name in kwargs:
          setattr(config, f.name, kwargs[f.name])
        elif f.default is not dataclasses.MISSING:
          setattr(config, f.name, f.default)
      config.validate(source)
    except TypeError as e:  # e.g. a string where a number belongs
      raise ValueError(f"{source}: {e}") from e
    return config

  @classmethod
  def from_json_file(cls, path: str) -> "ModelConfig":
    """Reads bert_config.json, albert_config.json, HF config.json or model_config.json."""
    if not fileio.exists(path):
      raise FileNotFoundError(f"Model config {path} not found.")
    try:
      raw = json.loads(fileio.read_text(path))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
      raise ValueError(f"{path} is not valid JSON ({e}).") from e
    return cls.from_dict(raw, source=path)
