"""What every checkpoint format shares: the files found, and weights under canonical names.

Canonical names are Google's TF1 names, as `modeling`'s `weight_map()` lists
them (bert/encoder/layer_0/attention/self/query/kernel, ...): each format
module translates its own names to them.
"""

from __future__ import annotations

import dataclasses
from typing import Callable, Dict, List, Optional, Tuple

from bertline import fileio

VOCAB_NAMES = ("vocab.txt", "vocab_chinese.txt")


@dataclasses.dataclass
class PretrainedFiles:
  """What resolve_pretrained found.

  Attributes:
    kind: str. One of checkpoints.KINDS.
    weights: str. A safetensors file (or index) or a checkpoint prefix.
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

  def model_config(self):
    """The config, completed with what only the checkpoint's format says (see the format modules)."""
    from bertline.model import checkpoints  # the package imports this module: a cycle at the top
    return checkpoints.model_config_of(self)

  def validate_for(self, max_seq_length: Optional[int] = None, vocab_file: Optional[str] = None,
                   do_lower_case: Optional[bool] = None):
    """Checks that the data fits this model before any work; returns its config.

    Args:
      max_seq_length: int or None. The data's sequence length.
      vocab_file: str or None. The vocabulary the data was tokenized with
        (default: the one beside the weights).
      do_lower_case: bool or None. The tokenizer's casing.
    Raises:
      ValueError: saying which setting to change.
    """
    from bertline.model import checkpoints  # the package imports this module: a cycle at the top
    return checkpoints.validate_for(self, max_seq_length, vocab_file, do_lower_case)


@dataclasses.dataclass
class Tensors:
  """A checkpoint's weights by canonical name, read lazily.

  Attributes:
    shapes: canonical name -> shape (already transposed where the format stores kernels
      the other way round).
    sources: canonical name -> the name in the file (for messages).
    loaders: canonical name -> a function returning the array.
    unused: names in the file that have no place in the model.
    skipped: entries that are not weights (optimizer slots, counters, buffers).
  """

  shapes: Dict[str, Tuple[int, ...]] = dataclasses.field(default_factory=dict)
  sources: Dict[str, str] = dataclasses.field(default_factory=dict)
  loaders: Dict[str, Callable] = dataclasses.field(default_factory=dict)
  unused: List[str] = dataclasses.field(default_factory=list)
  skipped: int = 0

  def add(self, canonical: str, source: str, shape, load: Callable, transpose: bool) -> None:
    shape = tuple(shape)
    self.shapes[canonical] = tuple(reversed(shape)) if transpose else shape
    self.sources[canonical] = source
    self.loaders[canonical] = (lambda: load().T) if transpose else load


def first_existing(directory: str, names) -> Optional[str]:
  for name in names:
    path = fileio.join(directory, name)
    if fileio.exists(path):
      return path
  return None
