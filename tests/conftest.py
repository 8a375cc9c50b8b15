"""Shared fixtures: small real data (English tweets) and a tiny random classifier.

The model_dir follows DEVELOPERS.md's layout (model_config.json, labels.txt,
vocab.txt, data_metadata.json, train_config.json, checkpoints/ holding
tf.train.Checkpoint(model=classifier)), built here so that the evaluator is
tested independently of the training loop.
"""

from __future__ import annotations

import json
import os
import shutil
import socket

import pytest
from safetensors import numpy as safetensors_numpy

from bertline import corpora, resources, schema

VOCAB = os.path.join(resources.minilm_dir(), "vocab.txt")
TINY_MINILM_LAYERS = 2


@pytest.fixture(scope="session")
def tiny_minilm(tmp_path_factory):
  """A Hugging Face directory holding the first two layers of the real MiniLM: real weights
  (and so real behaviour) at a third of the cost, for the end-to-end tests."""
  src = resources.minilm_dir()
  out = tmp_path_factory.mktemp("tiny_minilm")
  tensors = safetensors_numpy.load_file(os.path.join(src, "model.safetensors"))
  keep = {k: v for k, v in tensors.items()
          if not k.startswith("encoder.layer.") or int(k.split(".")[2]) < TINY_MINILM_LAYERS}
  safetensors_numpy.save_file(keep, str(out / "model.safetensors"))
  with open(os.path.join(src, "config.json")) as f:
    config = json.load(f)
  config["num_hidden_layers"] = TINY_MINILM_LAYERS
  (out / "config.json").write_text(json.dumps(config))
  shutil.copy(os.path.join(src, "vocab.txt"), out / "vocab.txt")
  return str(out)


@pytest.fixture(scope="session")
def tweets_data(tmp_path_factory):
  """Preprocessed real tweets: train/dev/test, max_seq_length 40, two shards per split."""
  from bertline.preprocessing import beam_job
  root = tmp_path_factory.mktemp("tweets")
  tsv, out = str(root / "tsv"), str(root / "data")
  corpora.write_tweets_tsv(tsv, limit=600, dev_fraction=0.2, test_fraction=0.2)
  beam_job.run(beam_job.config_from_args(["--task-config", os.path.join(tsv, corpora.TWEETS_TASK_FILE), "--data-dir", tsv,
                "--vocab-file", VOCAB, "--max-seq-length", "40", "--output-dir", out,
                "--num-shards", "2"]))
  return {"tsv": tsv, "data": out}


def make_model_dir(path, data_dir, seed=0, with_checkpoint=True, metadata=None):
  """A model_dir with a randomly initialised 2-layer, hidden-32 classifier.

  `metadata` (a schema.DataMetadata) replaces data_dir's, for models of tasks
  that need no preprocessed data in the test.
  """
  import keras
  import tensorflow as tf
  from bertline.preprocessing.tokenization import load_vocab
  from bertline.model.model_config import ModelConfig
  from bertline.model.modeling import BertClassifier

  metadata = metadata or schema.read_metadata(data_dir)
  os.makedirs(path, exist_ok=True)
  config = ModelConfig(vocab_size=len(load_vocab(VOCAB)), hidden_size=32, num_hidden_layers=2,
                       num_attention_heads=2, intermediate_size=64, max_position_embeddings=64)
  keras.utils.set_random_seed(seed)
  model = BertClassifier(config, num_labels=len(metadata.labels))
  with open(os.path.join(path, schema.MODEL_CONFIG_FILE), "w") as f:
    json.dump(config.to_dict(), f)
  with open(os.path.join(path, schema.LABELS_FILE), "w") as f:
    f.write("".join(label + "\n" for label in metadata.labels))
  shutil.copyfile(VOCAB, os.path.join(path, schema.VOCAB_FILE))
  with open(os.path.join(path, schema.DATA_METADATA_COPY), "w") as f:
    json.dump(metadata.to_dict(), f)
  with open(os.path.join(path, schema.TRAIN_CONFIG_FILE), "w") as f:
    # data_dir as train writes it: export builds its warmup requests from that data.
    json.dump({"learning_rate": 5e-5, "seed": seed, "data_dir": data_dir or ""}, f)
  if with_checkpoint:
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(model=model),
                                         os.path.join(path, schema.CHECKPOINT_SUBDIR), 3)
    manager.save(checkpoint_number=1)
  return model


@pytest.fixture(scope="session")
def tiny_model(tweets_data, tmp_path_factory):
  path = str(tmp_path_factory.mktemp("model") / "model_dir")
  model = make_model_dir(path, tweets_data["data"])
  return {"model_dir": path, "model": model}


@pytest.fixture(scope="session")
def exported(tiny_model, tmp_path_factory):
  from bertline.exporter.export import export_model
  export_dir = str(tmp_path_factory.mktemp("export"))
  path = export_model(tiny_model["model_dir"], export_dir, version=3)
  return {"path": path, "export_dir": export_dir}


@pytest.fixture(scope="module")
def gcs():
  """A storage client on a fresh emulator; STORAGE_EMULATOR_HOST set for push."""
  from gcp_storage_emulator.server import create_server
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
  server = create_server("127.0.0.1", port, in_memory=True)
  server.start()
  old = os.environ.get("STORAGE_EMULATOR_HOST")
  os.environ["STORAGE_EMULATOR_HOST"] = f"http://127.0.0.1:{port}"
  try:
    from google.cloud import storage
    client = storage.Client()
    client.create_bucket("models")
    yield client
  finally:
    server.stop()
    if old is None:
      del os.environ["STORAGE_EMULATOR_HOST"]
    else:
      os.environ["STORAGE_EMULATOR_HOST"] = old
