"""bertline/api.py: `import bertline` gives each stage as a function of its typed config."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

import bertline
from bertline import corpora, schema
from tests.conftest import VOCAB


def test_preprocess_through_the_api_writes_what_the_command_writes(tweets_data, tmp_path):
  config = bertline.PreprocessConfig(
      task_config=os.path.join(tweets_data["tsv"], corpora.TWEETS_TASK_FILE), data_dir=tweets_data["tsv"],
      vocab_file=VOCAB, max_seq_length=40, output_dir=str(tmp_path / "data"), num_shards=2)
  metadata = bertline.preprocess(config)
  with open(os.path.join(tweets_data["data"], schema.METADATA_FILE)) as f:
    command = json.load(f)
  ours = metadata.to_dict()
  for key in ("labels", "max_seq_length", "vocab_sha256", "has_text_b"):
    assert ours[key] == command[key], key
  assert ({s: i["num_examples"] for s, i in ours["splits"].items()}
          == {s: i["num_examples"] for s, i in command["splits"].items()})


@pytest.mark.slow  # ~12 s: the same stages as tests/evaluator/test_end_to_end.py; README's Python block
# (tests/test_docs.py) runs this API in make test
def test_evaluate_export_push_and_load_a_model(tiny_model, tweets_data, tmp_path):
  model_dir = str(tmp_path / "model")
  shutil.copytree(tiny_model["model_dir"], model_dir)
  result = bertline.evaluate(bertline.EvaluateConfig(
      model_dir, tweets_data["data"], thresholds={"eval_accuracy": 0.0}))
  assert result["blessing"]["blessed"] and os.path.exists(result["metrics_file"])
  version = bertline.export(bertline.ExportConfig(model_dir, str(tmp_path / "export"),
                                                  version=7))
  assert version == str(tmp_path / "export" / "7")
  pushed = bertline.push(bertline.PushConfig(version, str(tmp_path / "registry"),
                                             check_serving=False))
  assert os.path.exists(os.path.join(pushed, schema.PUSH_COMPLETE_MARKER))

  # load() of the registry is its last pushed version, answering as serving_default does.
  model = bertline.load(str(tmp_path / "registry"))
  assert model.path == pushed and model.version == "7" and not model.pairs
  texts = ["what a great day", "never again, worst service ever"]
  answers = model(texts)
  served = tf.saved_model.load(pushed).signatures[schema.SIGNATURE_TEXT](
      text_a=tf.constant(texts))
  probabilities = served[schema.OUTPUT_PROBABILITIES].numpy()
  for answer, row, label in zip(answers, probabilities, served[schema.OUTPUT_LABEL].numpy()):
    assert answer.label == label.decode()
    assert list(answer.probabilities) == model.labels == result["metrics"]["labels"]
    np.testing.assert_allclose(list(answer.probabilities.values()), row, atol=1e-6)

  # predict through the API: run_classifier's test_results.tsv, one line per test example.
  out = bertline.predict(bertline.PredictConfig(model_dir, tweets_data["data"],
                                                output=str(tmp_path / "test_results.tsv")))
  with open(out) as f:
    lines = f.read().splitlines()
  assert len(lines) == schema.read_metadata(tweets_data["data"]).splits["test"].num_examples


def test_distill_needs_its_teacher_and_load_names_what_it_wants(tmp_path):
  with pytest.raises(ValueError, match="distill needs TrainConfig.teacher"):
    bertline.distill(bertline.TrainConfig(data_dir="d", model_dir="m"))
  with pytest.raises(FileNotFoundError, match="neither an exported version"):
    bertline.load(str(tmp_path))


def test_every_name_in_all_is_there():
  missing = [name for name in bertline.__all__ if not hasattr(bertline, name)]
  assert not missing
  with pytest.raises(AttributeError, match="no attribute 'trian'"):
    bertline.trian  # noqa: B018
