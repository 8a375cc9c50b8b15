"""exporter/huggingface.py: a model_dir as a transformers directory that computes what ours does.

The reference is transformers itself: the directory is loaded with
from_pretrained (BertForPreTraining, BertForSequenceClassification) and its
logits must equal bertline's on the same inputs within 1e-4.
"""

from __future__ import annotations

import json
import os
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf
import torch
import transformers

from bertline import errors, schema
from bertline.exporter import huggingface
from bertline.model import checkpoints, pretrainer
from tests.reliability.conftest import bertline_here


def _inputs(vocab_size, seed=0):
  rng = np.random.default_rng(seed)
  ids = rng.integers(1000, vocab_size, (3, 12)).astype(np.int32)
  mask = (np.arange(12)[None] < np.array([[12], [8], [5]])).astype(np.int32)
  segments = (np.arange(12)[None] >= 4).astype(np.int32) * mask
  return {"input_ids": ids * mask, "input_mask": mask, "segment_ids": segments}


def _torch(inputs):
  return dict(input_ids=torch.tensor(inputs["input_ids"], dtype=torch.long),
              attention_mask=torch.tensor(inputs["input_mask"], dtype=torch.long),
              token_type_ids=torch.tensor(inputs["segment_ids"], dtype=torch.long))


def test_a_pretrain_model_dir_becomes_bert_for_pretraining(tmp_path, tiny_minilm):
  keras.mixed_precision.set_global_policy("float32")
  files = checkpoints.resolve_pretrained(tiny_minilm)
  keras.utils.set_random_seed(3)
  model = pretrainer.BertPretrainer(files.model_config(), pairs=True)
  checkpoints.load_pretrained(model, files)  # heads: new, random
  model_dir = tmp_path / "pt"
  os.makedirs(model_dir / schema.BEST_SUBDIR)
  (model_dir / schema.MODEL_CONFIG_FILE).write_text(json.dumps(files.model_config().to_dict()))
  shutil.copy(files.vocab_file, model_dir / schema.VOCAB_FILE)
  tf.train.CheckpointManager(tf.train.Checkpoint(model=model), str(model_dir / schema.BEST_SUBDIR),
                             1).save(checkpoint_number=4)

  out = huggingface.export(str(model_dir), str(tmp_path / "hf"))
  assert sorted(os.listdir(out)) == ["config.json", "model.safetensors", "vocab.txt"]
  with open(os.path.join(out, "config.json")) as f:
    assert json.load(f)["architectures"] == ["BertForPreTraining"]
  reference = transformers.BertForPreTraining.from_pretrained(out).eval()
  inputs = _inputs(files.model_config().vocab_size)
  positions = np.array([[1, 5, 9], [2, 3, 6], [1, 2, 3]], np.int32)
  ours = model({**inputs, "masked_lm_positions": positions}, training=False)
  with torch.no_grad():
    theirs = reference(**_torch(inputs))
  want = np.take_along_axis(theirs.prediction_logits.numpy(), positions[..., None], 1)
  np.testing.assert_allclose(ours["mlm_logits"].numpy(), want, atol=1e-4)
  np.testing.assert_allclose(ours["pair_logits"].numpy(),
                             theirs.seq_relationship_logits.numpy(), atol=1e-4)
  # Read back by bertline's own reader: every weight, none new.
  again = pretrainer.BertPretrainer(files.model_config(), pairs=True)
  assert checkpoints.load_pretrained(again, out).new == []
  # A masked LM is no classifier to serve: the SavedModel export says what to do instead.
  (model_dir / schema.DATA_METADATA_COPY).write_text(json.dumps({"kind": "pretraining"}))
  result = bertline_here("export", "--model-dir", model_dir, "--export-dir", tmp_path / "sm")
  assert result.returncode == errors.BAD_INPUT
  assert "is a `bertline pretrain` model_dir" in result.stderr and "--format huggingface" in \
      result.stderr and not (tmp_path / "sm").exists()


def test_a_classifier_becomes_bert_for_sequence_classification_with_its_labels(tmp_path,
                                                                              tiny_model):
  keras.mixed_precision.set_global_policy("float32")
  out = huggingface.export(tiny_model["model_dir"], str(tmp_path / "hf"))
  reference = transformers.BertForSequenceClassification.from_pretrained(out).eval()
  labels = open(os.path.join(tiny_model["model_dir"], schema.LABELS_FILE)).read().split()
  assert [reference.config.id2label[i] for i in range(len(labels))] == labels
  inputs = _inputs(tiny_model["model"].config.vocab_size, seed=1)
  ours = tiny_model["model"](inputs, training=False)["logits"].numpy()
  with torch.no_grad():
    theirs = reference(**_torch(inputs)).logits.numpy()
  np.testing.assert_allclose(ours, theirs, atol=1e-4)


def test_the_command_refuses_a_non_empty_directory_and_quantizing(tmp_path, tiny_model):
  (tmp_path / "busy").mkdir()
  (tmp_path / "busy" / "x").write_text("someone's")
  result = bertline_here("export", "--model-dir", tiny_model["model_dir"], "--export-dir",
                         tmp_path / "busy", "--format", "huggingface")
  assert result.returncode == errors.BAD_INPUT and "is not empty" in result.stderr
  assert (tmp_path / "busy" / "x").read_text() == "someone's"
  result = bertline_here("export", "--model-dir", tiny_model["model_dir"], "--export-dir",
                         tmp_path / "hf", "--format", "huggingface", "--quantize", "int8")
  assert result.returncode == errors.BAD_INPUT, result.stderr
  assert "--quantize applies to SavedModel exports; drop it with --format huggingface" in \
      result.stderr
  with pytest.raises(FileNotFoundError):
    huggingface.export(str(tmp_path / "nowhere"), str(tmp_path / "hf2"))
