"""Google's own google-research/bert code (bert-tensorflow==1.0.4), the parity reference."""

from __future__ import annotations

import sys
import types

import pytest


def _absl_ready():
  from absl import flags
  if not flags.FLAGS.is_parsed():
    flags.FLAGS(["bertline-tests"])  # its tokenization reads FLAGS at call time


def reference_tokenization():
  pytest.importorskip("bert", reason="bert-tensorflow is a test dependency (make venv)")
  _absl_ready()
  from bert import tokenization
  return tokenization


def reference_run_classifier():
  """bert.run_classifier, importable without its TF1 modeling/optimization modules."""
  pytest.importorskip("bert", reason="bert-tensorflow is a test dependency (make venv)")
  for name in ("bert.modeling", "bert.optimization"):
    sys.modules.setdefault(name, types.ModuleType(name))
  _absl_ready()
  from bert import run_classifier
  return run_classifier
