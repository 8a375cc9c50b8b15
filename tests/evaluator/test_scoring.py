"""evaluator/scoring.py: every example scored once, in input order, the same from a model_dir
and from its export; label and vocabulary mismatches named before any scoring."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from bertline import schema
from bertline.evaluator import scoring
from tests.evaluator.helpers import keras_reference


def test_guids_sort_in_input_line_order():
  guids = ["dev-10", "dev-9", "dev-100", "dev-1", "train-2"]
  assert sorted(guids, key=scoring.guid_sort_key) == \
      ["dev-1", "dev-9", "dev-10", "dev-100", "train-2"]


def test_a_model_dir_and_its_export_score_every_example_once_alike(tiny_model, exported,
                                                                    tweets_data):
  data = tweets_data["data"]
  metadata = schema.read_metadata(data)
  ref = keras_reference(tiny_model["model"], data, "dev")
  by_kind = {}
  for model in (tiny_model["model_dir"], exported["path"]):
    fn, labels, vocab_sha, description = scoring.model_logits_fn(model, which="latest")
    assert labels == metadata.labels and vocab_sha == metadata.vocab_sha256
    # Batches of 7 cut across both shards: order comes from the guids, not the reading.
    out = scoring.score_split(fn, data, metadata, "dev", batch_size=7)
    assert len(out["guid"]) == metadata.splits["dev"].num_examples == len(ref)
    assert list(out["guid"]) == sorted(ref, key=scoring.guid_sort_key)
    assert [ref[g][0] for g in out["guid"]] == list(out["label_ids"])
    by_kind[description["kind"]] = tf.nn.softmax(out["logits"]).numpy()
  assert set(by_kind) == {"model_dir", "saved_model"}
  want = np.stack([ref[g][1] for g in sorted(ref, key=scoring.guid_sort_key)])
  for probabilities in by_kind.values():
    np.testing.assert_allclose(probabilities, want, atol=1e-5)
  assert scoring.is_export(exported["path"]) and scoring.is_saved_model(exported["path"])
  assert not scoring.is_export(tiny_model["model_dir"])


def test_mismatched_labels_or_vocab_are_named_with_the_fix(tweets_data):
  data = tweets_data["data"]
  metadata = schema.read_metadata(data)
  scoring.check_same_labels(metadata.labels, metadata.labels, "m", data)
  with pytest.raises(ValueError, match=r"label mismatch: m was trained with labels \['neutral', "
                     r"'negative', 'positive'\] but .*metadata.json has .*same labels in "
                     r"the same order"):
    scoring.check_same_labels(["neutral", "negative", "positive"], metadata.labels, "m", data)
  scoring.check_same_vocab(metadata.vocab_sha256, metadata, "m", data)
  scoring.check_same_vocab(None, metadata, "m", data)  # an older model without the hash
  with pytest.raises(ValueError, match="vocab mismatch: .* Preprocess the data with the model's "
                                       "vocab.txt"):
    scoring.check_same_vocab("0" * 64, metadata, "m", data)


def test_an_empty_split_is_an_error_not_an_empty_result():
  empty = tf.data.Dataset.from_tensor_slices({"x": tf.zeros([0, 1])}).batch(4)
  with pytest.raises(ValueError, match="holds no examples"):
    scoring.score(lambda features: features, empty)
