"""Test fixtures: checkpoints in Google's and ALBERT's TF1 formats, written from real weights.

The names are written out here by hand from google-research/bert's and
google-research/albert's modeling.py (not derived from bertline's own mapping),
so that a reader bug cannot hide behind the same bug in the writer.
"""

from __future__ import annotations

import json
import os
import shutil
from typing import Dict

import numpy as np
import tensorflow as tf

from bertline import resources

# Hugging Face BERT parameter (inside encoder.layer.N.) -> Google's name inside
# bert/encoder/layer_N/, and whether the array is a torch Linear weight
# ([out, in], transposed to TF's [in, out] kernel).
_HF_TO_GOOGLE_LAYER = [
    ("attention.self.query.weight", "attention/self/query/kernel"),
    ("attention.self.query.bias", "attention/self/query/bias"),
    ("attention.self.key.weight", "attention/self/key/kernel"),
    ("attention.self.key.bias", "attention/self/key/bias"),
    ("attention.self.value.weight", "attention/self/value/kernel"),
    ("attention.self.value.bias", "attention/self/value/bias"),
    ("attention.output.dense.weight", "attention/output/dense/kernel"),
    ("attention.output.dense.bias", "attention/output/dense/bias"),
    ("attention.output.LayerNorm.weight", "attention/output/LayerNorm/gamma"),
    ("attention.output.LayerNorm.bias", "attention/output/LayerNorm/beta"),
    ("intermediate.dense.weight", "intermediate/dense/kernel"),
    ("intermediate.dense.bias", "intermediate/dense/bias"),
    ("output.dense.weight", "output/dense/kernel"),
    ("output.dense.bias", "output/dense/bias"),
    ("output.LayerNorm.weight", "output/LayerNorm/gamma"),
    ("output.LayerNorm.bias", "output/LayerNorm/beta"),
]
# The same parameters in ALBERT's TF1 checkpoints (inside
# bert/encoder/transformer/group_G/inner_group_J/).
GOOGLE_TO_ALBERT_LAYER = {
    "attention/self/query": "attention_1/self/query",
    "attention/self/key": "attention_1/self/key",
    "attention/self/value": "attention_1/self/value",
    "attention/output/dense": "attention_1/output/dense",
    "attention/output/LayerNorm": "LayerNorm",
    "intermediate/dense": "ffn_1/intermediate/dense",
    "output/dense": "ffn_1/intermediate/output/dense",
    "output/LayerNorm": "LayerNorm_1",
}


def minilm_safetensors() -> Dict[str, np.ndarray]:
  from safetensors.numpy import load_file
  return load_file(os.path.join(resources.minilm_dir(), "model.safetensors"))


def minilm_google_tensors() -> Dict[str, np.ndarray]:
  """The MiniLM weights under Google's bert_model.ckpt names."""
  hf = minilm_safetensors()
  out = {
      "bert/embeddings/word_embeddings": hf["embeddings.word_embeddings.weight"],
      "bert/embeddings/position_embeddings": hf["embeddings.position_embeddings.weight"],
      "bert/embeddings/token_type_embeddings": hf["embeddings.token_type_embeddings.weight"],
      "bert/embeddings/LayerNorm/gamma": hf["embeddings.LayerNorm.weight"],
      "bert/embeddings/LayerNorm/beta": hf["embeddings.LayerNorm.bias"],
      "bert/pooler/dense/kernel": hf["pooler.dense.weight"].T,
      "bert/pooler/dense/bias": hf["pooler.dense.bias"],
  }
  layers = {int(k.split(".")[2]) for k in hf if k.startswith("encoder.layer.")}
  for i in sorted(layers):
    for hf_name, google in _HF_TO_GOOGLE_LAYER:
      value = hf[f"encoder.layer.{i}.{hf_name}"]
      out[f"bert/encoder/layer_{i}/{google}"] = value.T if google.endswith("kernel") else value
  return out


def write_tf1_checkpoint(tensors: Dict[str, np.ndarray], prefix: str) -> str:
  """Writes `name -> array` as a TF1 Saver checkpoint with exactly those names."""
  os.makedirs(os.path.dirname(prefix), exist_ok=True)
  with tf.Graph().as_default():
    variables = {name: tf.compat.v1.Variable(np.asarray(value), name=f"v{i}")
                 for i, (name, value) in enumerate(sorted(tensors.items()))}
    saver = tf.compat.v1.train.Saver(var_list=variables)
    with tf.compat.v1.Session() as sess:
      sess.run(tf.compat.v1.global_variables_initializer())
      return saver.save(sess, prefix)


def google_config(hf_config: dict) -> dict:
  """bert_config.json as Google ships it (its keys only, plus the Chinese extras)."""
  keys = ("attention_probs_dropout_prob", "hidden_act", "hidden_dropout_prob", "hidden_size",
          "initializer_range", "intermediate_size", "max_position_embeddings",
          "num_attention_heads", "num_hidden_layers", "type_vocab_size", "vocab_size")
  out = {k: hf_config[k] for k in keys}
  out.update(pooler_fc_size=hf_config["hidden_size"], pooler_type="first_token_transform",
             directionality="bidi")
  return out


def write_google_minilm(directory: str, extra: Dict[str, np.ndarray] = None,
                        checkpoint_name: str = "bert_model.ckpt") -> str:
  """A Google-zip-like directory: bert_model.ckpt.*, bert_config.json, vocab.txt.

  `extra` adds tensors (e.g. run_classifier's output_weights); `checkpoint_name`
  "model.ckpt-N" makes it look like run_classifier's output_dir.
  """
  os.makedirs(directory, exist_ok=True)
  tensors = minilm_google_tensors()
  # What real pre-training checkpoints also hold: the MLM/NSP heads and
  # optimizer state, which a fine-tuning load must skip.
  hidden = tensors["bert/pooler/dense/bias"].shape[0]
  tensors["cls/predictions/output_bias"] = np.zeros([tensors[
      "bert/embeddings/word_embeddings"].shape[0]], np.float32)
  tensors["cls/seq_relationship/output_weights"] = np.zeros([2, hidden], np.float32)
  tensors["bert/pooler/dense/kernel/adam_m"] = np.zeros([hidden, hidden], np.float32)
  tensors["global_step"] = np.array(1000, np.int64)
  tensors.update(extra or {})
  write_tf1_checkpoint(tensors, os.path.join(directory, checkpoint_name))
  with open(os.path.join(resources.minilm_dir(), "config.json")) as f:
    hf_config = json.load(f)
  with open(os.path.join(directory, "bert_config.json"), "w") as f:
    json.dump(google_config(hf_config), f)
  shutil.copy(os.path.join(resources.minilm_dir(), "vocab.txt"), directory)
  return directory


def tiny_albert_tensors(rng: np.random.Generator, vocab_size: int, embedding_size: int,
                        hidden: int, intermediate: int, max_positions: int,
                        groups: int = 1) -> Dict[str, np.ndarray]:
  """Random weights under google-research/albert's TF1 names."""
  def w(*shape):
    return rng.normal(0, 0.2, shape).astype(np.float32)

  out = {
      "bert/embeddings/word_embeddings": w(vocab_size, embedding_size),
      "bert/embeddings/position_embeddings": w(max_positions, embedding_size),
      "bert/embeddings/token_type_embeddings": w(2, embedding_size),
      "bert/embeddings/LayerNorm/gamma": 1 + w(embedding_size),
      "bert/embeddings/LayerNorm/beta": w(embedding_size),
      "bert/encoder/embedding_hidden_mapping_in/kernel": w(embedding_size, hidden),
      "bert/encoder/embedding_hidden_mapping_in/bias": w(hidden),
      "bert/pooler/dense/kernel": w(hidden, hidden),
      "bert/pooler/dense/bias": w(hidden),
  }
  shapes = {"attention/self/query": (hidden, hidden), "attention/self/key": (hidden, hidden),
            "attention/self/value": (hidden, hidden),
            "attention/output/dense": (hidden, hidden),
            "intermediate/dense": (hidden, intermediate),
            "output/dense": (intermediate, hidden)}
  for g in range(groups):
    prefix = f"bert/encoder/transformer/group_{g}/inner_group_0/"
    for google, albert in GOOGLE_TO_ALBERT_LAYER.items():
      if google.endswith("LayerNorm"):
        out[prefix + albert + "/gamma"] = 1 + w(hidden)
        out[prefix + albert + "/beta"] = w(hidden)
      else:
        out[prefix + albert + "/kernel"] = w(*shapes[google])
        out[prefix + albert + "/bias"] = w(shapes[google][1])
  return out


def _layer_norm(x, gamma, beta, eps=1e-12):
  mean = x.mean(-1, keepdims=True)
  var = ((x - mean) ** 2).mean(-1, keepdims=True)
  return (x - mean) / np.sqrt(var + eps) * gamma + beta


def numpy_albert(t: Dict[str, np.ndarray], ids, mask, segments, num_layers: int, heads: int,
                 groups: int = 1, word_projection: bool = False, tanh_gelu: bool = False):
  """ALBERT's forward pass written directly from its TF1 modeling.py, in numpy float64.

  Returns (list of every layer's output [b, s, h], pooled output [b, h]).
  """
  import math
  erf = np.vectorize(math.erf)
  t = {k: v.astype(np.float64) for k, v in t.items()}
  words = t["bert/embeddings/word_embeddings"][ids]
  if word_projection:  # albert_zh: project words, then add position/type in hidden width
    words = words @ t["bert/embeddings/word_embeddings_2"]
  x = words + t["bert/embeddings/position_embeddings"][None, :ids.shape[1]] \
      + t["bert/embeddings/token_type_embeddings"][segments]
  x = _layer_norm(x, t["bert/embeddings/LayerNorm/gamma"], t["bert/embeddings/LayerNorm/beta"])
  if not word_projection:
    x = x @ t["bert/encoder/embedding_hidden_mapping_in/kernel"] \
        + t["bert/encoder/embedding_hidden_mapping_in/bias"]
  b, s, h = x.shape
  d = h // heads
  outputs = []
  for layer in range(num_layers):
    g = int(layer / (num_layers / groups))
    p = f"bert/encoder/transformer/group_{g}/inner_group_0/"

    def dense(v, name):
      return v @ t[p + name + "/kernel"] + t[p + name + "/bias"]

    q, k, v = (dense(x, f"attention_1/self/{n}").reshape(b, s, heads, d).transpose(0, 2, 1, 3)
               for n in ("query", "key", "value"))
    scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(d) + (1.0 - mask[:, None, None, :]) * -10000.0
    probs = np.exp(scores - scores.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    context = (probs @ v).transpose(0, 2, 1, 3).reshape(b, s, h)
    attention = _layer_norm(dense(context, "attention_1/output/dense") + x,
                            t[p + "LayerNorm/gamma"], t[p + "LayerNorm/beta"])
    inner = dense(attention, "ffn_1/intermediate/dense")
    if tanh_gelu:  # google-research/albert's gelu
      inner = 0.5 * inner * (1 + np.tanh(math.sqrt(2 / math.pi) * (inner + 0.044715 * inner ** 3)))
    else:
      inner = 0.5 * inner * (1 + erf(inner / math.sqrt(2)))
    x = _layer_norm(dense(inner, "ffn_1/intermediate/output/dense") + attention,
                    t[p + "LayerNorm_1/gamma"], t[p + "LayerNorm_1/beta"])
    outputs.append(x)
  pooled = np.tanh(x[:, 0] @ t["bert/pooler/dense/kernel"] + t["bert/pooler/dense/bias"])
  return outputs, pooled
