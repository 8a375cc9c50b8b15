"""model/pretrainer.py: the masked-LM and pair heads equal transformers' on the same weights.

The reference is transformers' BertForPreTraining (and AlbertForPreTraining) in
PyTorch: the real MiniLM's encoder with pre-training heads drawn by
transformers' own initialiser, saved with save_pretrained and loaded through
bertline's Hugging Face reader. Logits and losses must agree within 1e-4.
"""

from __future__ import annotations

import json
import os
import shutil

import keras
import numpy as np
import tensorflow as tf
import torch
import transformers

from bertline import corpora, resources
from bertline.model import checkpoints, pretrainer
from bertline.preprocessing.features import pack_features
from bertline.preprocessing.tokenization import BertTokenizer
from tests.model.checkpoints.helpers import albert_config

PREDICTIONS = 6


def _masked(ids, mask, rng):
  """Masked positions per example (never [CLS] or padding), and the ids there."""
  positions = np.zeros((len(ids), PREDICTIONS), np.int32)
  weights = np.zeros((len(ids), PREDICTIONS), np.float32)
  for i, length in enumerate(mask.sum(1)):
    picked = np.sort(rng.choice(np.arange(1, length - 1), min(PREDICTIONS, length - 2),
                                replace=False))
    positions[i, :len(picked)] = picked
    weights[i, :len(picked)] = 1.0
  return positions, np.take_along_axis(ids, positions, 1) * (weights > 0), weights


def _minilm_pretraining_dir(tmp_path):
  """The real MiniLM with BertForPreTraining's heads, drawn by transformers and saved by it."""
  torch.manual_seed(0)
  model = transformers.BertForPreTraining.from_pretrained(resources.minilm_dir())
  model.eval()
  out = str(tmp_path / "minilm-pretraining")
  model.save_pretrained(out, safe_serialization=True)
  shutil.copy(os.path.join(resources.minilm_dir(), "vocab.txt"), out)
  return out, model


def _features():
  texts = [t.decode("utf-8", "ignore") for _, t in corpora.read_tweets(limit=24)][::3]
  tok = BertTokenizer(os.path.join(resources.minilm_dir(), "vocab.txt"), do_lower_case=True)
  half = len(texts) // 2
  f = pack_features(tok.tokenize(tf.constant(texts[:half])),
                    tok.tokenize(tf.constant(texts[half:2 * half])), 40, tok.cls_id, tok.sep_id)
  return {k: v.numpy().astype(np.int32) for k, v in f.items()}


def _torch_loss(reference, ids, positions, masked_ids, weights, pair_labels, torch_inputs):
  labels = np.full(ids.shape, -100, np.int64)
  for i in range(len(ids)):
    for p, t, w in zip(positions[i], masked_ids[i], weights[i]):
      if w:
        labels[i, p] = t
  with torch.no_grad():
    out = reference(**torch_inputs, labels=torch.tensor(labels),
                    next_sentence_label=torch.tensor(pair_labels, dtype=torch.long))
  return out


def test_bert_heads_and_losses_equal_transformers_bert_for_pretraining(tmp_path):
  keras.mixed_precision.set_global_policy("float32")
  directory, reference = _minilm_pretraining_dir(tmp_path)
  files = checkpoints.resolve_pretrained(directory)
  model = pretrainer.BertPretrainer(files.model_config(), pairs=True)
  report = checkpoints.load_pretrained(model, files)
  assert report.new == [] and report.unused == []  # save_pretrained drops the tied decoder
  features = _features()
  rng = np.random.default_rng(0)
  positions, masked_ids, weights = _masked(features["input_ids"], features["input_mask"], rng)
  pair_labels = rng.integers(0, 2, len(positions))
  ours = model({**features, "masked_lm_positions": positions}, training=False)

  torch_inputs = dict(input_ids=torch.tensor(features["input_ids"], dtype=torch.long),
                      attention_mask=torch.tensor(features["input_mask"], dtype=torch.long),
                      token_type_ids=torch.tensor(features["segment_ids"], dtype=torch.long))
  out = _torch_loss(reference, features["input_ids"], positions, masked_ids, weights,
                    pair_labels, torch_inputs)
  want = np.take_along_axis(out.prediction_logits.numpy(), positions[..., None], 1)
  got = ours["mlm_logits"].numpy()
  assert got.shape == (len(positions), PREDICTIONS, files.model_config().vocab_size)
  real = weights > 0
  np.testing.assert_allclose(got[real], want[real], atol=1e-4)
  np.testing.assert_allclose(ours["pair_logits"].numpy(), out.seq_relationship_logits.numpy(),
                             atol=1e-4)
  # run_pretraining's total loss: masked LM (mean over real masks) + NSP (mean over examples).
  mlm = pretrainer.masked_lm_loss(ours["mlm_logits"], masked_ids, weights)
  pair = pretrainer.pair_loss(ours["pair_logits"], pair_labels)
  total = float(tf.reduce_sum(mlm) + tf.reduce_mean(pair))
  assert abs(total - float(out.loss)) < 1e-4, (total, float(out.loss))


def test_a_checkpoint_without_heads_gets_new_ones_and_encoder_weights_stay_required(tmp_path):
  keras.mixed_precision.set_global_policy("float32")
  files = checkpoints.resolve_pretrained(resources.minilm_dir())  # an encoder only (BertModel)
  model = pretrainer.BertPretrainer(files.model_config(), pairs=False)
  report = checkpoints.load_pretrained(model, files)
  assert sorted(report.new) == sorted([pretrainer.MLM_DENSE_KERNEL, pretrainer.MLM_DENSE_BIAS,
                                       pretrainer.MLM_NORM_GAMMA, pretrainer.MLM_NORM_BETA,
                                       pretrainer.MLM_OUTPUT_BIAS])
  # The decoder is the word embedding table itself: tied, not a copy.
  table = model.encoder.embeddings.word_embeddings.embeddings
  assert sum(v is table for v in model.trainable_variables) == 1
  assert len(model.trainable_variables) == len({id(v) for v in model.trainable_variables})


def test_albert_heads_project_to_the_embedding_width_as_transformers_does(tmp_path):
  keras.mixed_precision.set_global_policy("float32")
  config = albert_config(str(tmp_path))
  torch.manual_seed(1)
  hf_config = transformers.AlbertConfig(**{k: v for k, v in config.items()})
  reference = transformers.AlbertForPreTraining(hf_config).eval()
  reference.save_pretrained(str(tmp_path / "albert"), safe_serialization=True)
  shutil.copy(tmp_path / "vocab.txt", tmp_path / "albert" / "vocab.txt")
  with open(tmp_path / "albert" / "config.json") as f:
    assert json.load(f)["embedding_size"] == 8
  files = checkpoints.resolve_pretrained(str(tmp_path / "albert"))
  model = pretrainer.BertPretrainer(files.model_config(), pairs=True)
  report = checkpoints.load_pretrained(model, files)
  assert report.new == [] and report.unused == []
  assert tuple(model.mlm.dense.kernel.shape) == (16, 8)  # hidden -> embedding width
  rng = np.random.default_rng(2)
  ids = rng.integers(4, 30, (3, 10)).astype(np.int32)
  mask = np.ones_like(ids)
  segments = (np.arange(10)[None] >= 5).astype(np.int32).repeat(3, 0)
  positions = np.array([[1, 3, 7], [2, 4, 8], [5, 6, 9]], np.int32)
  ours = model({"input_ids": ids, "input_mask": mask, "segment_ids": segments,
                "masked_lm_positions": positions}, training=False)
  with torch.no_grad():
    out = reference(input_ids=torch.tensor(ids, dtype=torch.long),
                    attention_mask=torch.tensor(mask, dtype=torch.long),
                    token_type_ids=torch.tensor(segments, dtype=torch.long))
  want = np.take_along_axis(out.prediction_logits.numpy(), positions[..., None], 1)
  np.testing.assert_allclose(ours["mlm_logits"].numpy(), want, atol=1e-4)
  np.testing.assert_allclose(ours["pair_logits"].numpy(), out.sop_logits.numpy(), atol=1e-4)


