"""Small real data and a tiny model for the trainer tests."""

from __future__ import annotations

import json
import os
import random

import numpy as np

from bertline import corpora, resources
from bertline.model.model_dir import ModelDir
from bertline.preprocessing import beam_job

# The repository root: subprocesses run `python -m bertline.cli` from it.
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
VOCAB = os.path.join(resources.minilm_dir(), "vocab.txt")

LANG_TASK = """\
name: lang
labels: [en, zh]
splits:
  train: {file: train.tsv, header: true, text_a: 1, label: 0}
  dev: {file: dev.tsv, header: true, text_a: 1, label: 0}
"""


def write_language_task(data_dir: str, n_train: int = 320, n_dev: int = 72, seed: int = 0) -> str:
  """Real English tweets vs real Chinese reviews: separable by a tiny encoder.

  Returns the task YAML path.
  """
  os.makedirs(data_dir, exist_ok=True)
  per_class = (n_train + n_dev) // 2
  en = [text for _, text in corpora.read_tweets(limit=per_class)]
  zh = [text.encode("utf-8") for _, text in corpora.read_chinese_reviews(limit_per_class=per_class)
        ][:per_class]
  rows = [b"en\t" + t for t in en] + [b"zh\t" + t for t in zh]
  random.Random(seed).shuffle(rows)
  for split, part in (("train", rows[:n_train]), ("dev", rows[n_train:n_train + n_dev])):
    with open(os.path.join(data_dir, f"{split}.tsv"), "wb") as f:
      f.write(b"label\ttext\n" + b"".join(r + b"\n" for r in part))
  path = os.path.join(data_dir, "task.yaml")
  with open(path, "w") as f:
    f.write(LANG_TASK)
  return path


def preprocess_language_task(root: str, max_seq_length: int = 64, num_shards: int = 2) -> str:
  data, out = os.path.join(root, "tsv"), os.path.join(root, "records")
  task = write_language_task(data)
  beam_job.run(beam_job.config_from_args(["--task-config", task, "--data-dir", data, "--vocab-file", VOCAB,
                "--max-seq-length", str(max_seq_length), "--output-dir", out,
                "--num-shards", str(num_shards), "--splits", "train,dev"]))
  return out


def tiny_model_config(path: str, dropout: float = 0.1) -> str:
  """A 2-layer, hidden-32 BERT over the MiniLM vocabulary (Hugging Face config.json)."""
  with open(VOCAB, encoding="utf-8") as f:
    vocab_size = sum(1 for _ in f)
  config = {"vocab_size": vocab_size, "hidden_size": 32, "num_hidden_layers": 2,
            "num_attention_heads": 2, "intermediate_size": 64, "hidden_act": "gelu",
            "hidden_dropout_prob": dropout, "attention_probs_dropout_prob": dropout,
            "max_position_embeddings": 128, "type_vocab_size": 2, "initializer_range": 0.02,
            "layer_norm_eps": 1e-12, "model_type": "bert"}
  with open(path, "w") as f:
    json.dump(config, f)
  return path


def train_config(records, model_dir, tiny_config, **overrides):
  """A TrainConfig of the tiny model on the language task (batch 16, 2 epochs, eval every 10)."""
  from bertline.trainer import train
  values = dict(data_dir=records, model_dir=str(model_dir), model_config_file=tiny_config,
                vocab_file=VOCAB, batch_size=16, eval_batch_size=32, epochs=2,
                learning_rate=1e-3, eval_every_steps=10, progress=False, seed=3)
  values.update(overrides)
  return train.TrainConfig(**values)


def weights(model_dir, which="latest"):
  return [v.numpy() for v in ModelDir(str(model_dir)).load_classifier(which).weights]


def assert_same_weights(a, b, **tol):
  assert len(a) == len(b)
  for x, y in zip(a, b):
    if tol:
      np.testing.assert_allclose(x, y, **tol)
    else:
      np.testing.assert_array_equal(x, y)
