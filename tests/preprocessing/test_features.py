"""pack_features against run_classifier.convert_single_example on real text."""

from __future__ import annotations

import os
import random

import numpy as np
import pytest
import tensorflow as tf

from bertline import corpora, resources, schema
from bertline.preprocessing import features, tokenization
from tests.preprocessing import reference


def _truncate_loop(la, lb, budget):
  """_truncate_seq_pair's loop on lengths."""
  while la + lb > budget:
    if la > lb:
      la -= 1
    else:
      lb -= 1
  return la, lb


def test_closed_form_truncation_equals_the_loop():
  cases = [(la, lb, m) for m in range(0, 14) for la in range(0, 16) for lb in range(0, 16)]
  got_a, got_b = features.truncate_pair_lengths(
      tf.constant([c[0] for c in cases], tf.int64), tf.constant([c[1] for c in cases], tf.int64),
      tf.constant([c[2] for c in cases], tf.int64))
  expected = [_truncate_loop(*c) for c in cases]
  assert list(zip(got_a.numpy().tolist(), got_b.numpy().tolist())) == expected


@pytest.mark.parametrize("max_seq_length", [8, 32, 128])
@pytest.mark.parametrize("pair", [False, True], ids=["single", "pair"])
def test_same_features_as_convert_single_example(max_seq_length, pair):
  rc = reference.reference_run_classifier()
  vocab = os.path.join(resources.minilm_dir(), "vocab.txt")
  ref_tok = reference.reference_tokenization().FullTokenizer(vocab, do_lower_case=True)
  tok = tokenization.BertTokenizer(vocab, do_lower_case=True)
  texts = [t.decode("utf-8", "ignore") for _, t in corpora.read_tweets(limit=300)]
  texts += ["", "   "]  # no tokens: [CLS] [SEP] alone
  rng = random.Random(max_seq_length)
  texts_b = [rng.choice(texts) for _ in texts] if pair else None
  if pair:  # a text_b without tokens makes a single-text row in the reference
    texts_b[:2] = ["", " \t "]
  labels = ["0", "1"]
  got = features.pack_features(
      tok.tokenize(tf.constant(texts)),
      tok.tokenize(tf.constant(texts_b)) if pair else None,
      max_seq_length, tok.cls_id, tok.sep_id)
  for i, text in enumerate(texts):
    example = rc.InputExample(guid=f"t-{i}", text_a=text, text_b=texts_b[i] if pair else None,
                              label="1")
    expected = rc.convert_single_example(10, example, labels, max_seq_length, ref_tok)
    for name in schema.SEQUENCE_FEATURES:
      np.testing.assert_array_equal(got[name][i].numpy(), getattr(expected, name),
                                    err_msg=f"{name} of example {i}: {text!r}")


@pytest.mark.parametrize("pair", [False, True], ids=["single", "pair"])
def test_encoder_outputs_have_a_static_length(pair):
  """Serving signatures and XLA see [batch, max_seq_length], not an unknown length."""
  tok = tokenization.BertTokenizer(os.path.join(resources.minilm_dir(), "vocab.txt"), True)
  concrete = features.make_encoder(tok, 32, pair).get_concrete_function()
  assert {k: v.shape.as_list() for k, v in concrete.structured_outputs.items()} == {
      k: [None, 32] for k in (schema.INPUT_IDS, schema.INPUT_MASK, schema.SEGMENT_IDS)}
