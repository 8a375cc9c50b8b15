"""exporter/load.py: a Classifier answers raw text exactly as the export's serving_default does,
from an export version or the last version pushed under a registry."""

import shutil

import numpy as np
import pytest
import tensorflow as tf

from bertline import schema
from bertline.exporter.load import Classifier, Prediction

TEXTS = ["what a great day", "never again, worst service ever", "meh", ""]


def test_answers_are_the_served_signatures_by_label_name(exported):
  model = Classifier(exported["path"])
  assert model.path == exported["path"] and model.version == "3" and not model.pairs
  assert model.labels == ["negative", "neutral", "positive"]
  served = tf.saved_model.load(exported["path"]).signatures[schema.SIGNATURE_TEXT](
      text_a=tf.constant(TEXTS))
  probabilities = served[schema.OUTPUT_PROBABILITIES].numpy()
  outputs = model.outputs(TEXTS)
  np.testing.assert_array_equal(outputs[schema.OUTPUT_PROBABILITIES], probabilities)
  answers = model(TEXTS)
  assert len(answers) == len(TEXTS) and all(isinstance(a, Prediction) for a in answers)
  for answer, row in zip(answers, probabilities):
    assert list(answer.probabilities) == model.labels
    np.testing.assert_allclose(list(answer.probabilities.values()), row, atol=1e-7)
    assert answer.label == model.labels[int(np.argmax(row))]


def test_a_registry_loads_its_newest_complete_version(exported, tmp_path):
  registry = tmp_path / "registry"
  for version in ("3", "12"):
    shutil.copytree(exported["path"], registry / version)
  (registry / "12" / schema.PUSH_COMPLETE_MARKER).write_text("{}")
  (registry / "3" / schema.PUSH_COMPLETE_MARKER).write_text("{}")
  shutil.copytree(exported["path"], registry / "40")  # a push that never finished
  # Numeric order (12 after 3), and only versions whose push completed.
  assert Classifier(str(registry)).version == "12"
  with pytest.raises(FileNotFoundError, match="neither an exported version"):
    Classifier(str(tmp_path / "nothing-here"))
