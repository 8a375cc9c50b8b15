"""Real MiniLM weights and real tweets, loaded once for every checkpoint-format test."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from bertline import corpora, resources
from bertline.preprocessing.features import pack_features
from bertline.preprocessing.tokenization import BertTokenizer
from bertline.model import checkpoints, modeling
from bertline.model.model_config import ModelConfig
from tests.model.checkpoints.helpers import MAX_SEQ_LENGTH, torch_inputs


@pytest.fixture(scope="module")
def features():
  """Real tweets of mixed lengths (some truncated, most padded) and a pair."""
  texts = [t.decode("utf-8", "ignore") for _, t in corpora.read_tweets(limit=40)]
  texts = sorted(texts, key=len)[::5] + ["Hi!", "a " * 80]
  tok = BertTokenizer(os.path.join(resources.minilm_dir(), "vocab.txt"), do_lower_case=True)
  f = pack_features(tok.tokenize(tf.constant(texts)), None, MAX_SEQ_LENGTH, tok.cls_id,
                    tok.sep_id)
  f = {k: v.numpy().astype(np.int32) for k, v in f.items()}
  pair = pack_features(tok.tokenize(tf.constant(["The movie was great."])),
                       tok.tokenize(tf.constant(["I did not like it at all."])),
                       MAX_SEQ_LENGTH, tok.cls_id, tok.sep_id)
  f = {k: np.concatenate([f[k], pair[k].numpy().astype(np.int32)]) for k in f}
  lengths = f["input_mask"].sum(1)
  assert lengths.min() < 10 and lengths.max() == MAX_SEQ_LENGTH and f["segment_ids"].max() == 1
  return f


@pytest.fixture(scope="module")
def minilm():
  """(encoder loaded from the HF directory, its outputs on `features`)."""
  keras.mixed_precision.set_global_policy("float32")
  files = checkpoints.resolve_pretrained(resources.minilm_dir())
  encoder = modeling.BertEncoder(files.model_config())
  report = checkpoints.load_pretrained(encoder, files)
  return encoder, report


@pytest.fixture(scope="module")
def minilm_outputs(minilm, features):
  return minilm[0](features, training=False)


@pytest.fixture(scope="module")
def minilm_tanh_outputs(features):
  """MiniLM's weights run as Google's TF1 code runs them: "gelu" as the tanh approximation.

  bertline's encoder from the HF directory with hidden_act overridden, checked
  against transformers' BertModel with hidden_act "gelu_new".
  """
  torch = pytest.importorskip("torch")
  transformers = pytest.importorskip("transformers")
  d = checkpoints.resolve_pretrained(resources.minilm_dir()).model_config().to_dict()
  assert d["hidden_act"] == "gelu"  # a Hugging Face dir keeps its config's activation
  d["hidden_act"] = "gelu_new"
  encoder = modeling.BertEncoder(ModelConfig.from_dict(d))
  checkpoints.load_pretrained(encoder, resources.minilm_dir(), check_config=False)
  out = encoder(features, training=False)
  config = transformers.BertConfig.from_pretrained(resources.minilm_dir(), hidden_act="gelu_new")
  reference = transformers.BertModel.from_pretrained(
      resources.minilm_dir(), config=config, attn_implementation="eager").eval()
  with torch.no_grad():
    ref = reference(**torch_inputs(torch, features), output_hidden_states=True)
  for ours, theirs in zip(out["encoder_outputs"], ref.hidden_states[1:]):
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), atol=1e-4, rtol=0)
  np.testing.assert_allclose(out["pooled_output"].numpy(), ref.pooler_output.numpy(),
                             atol=1e-4, rtol=0)
  return out
