"""`bertline distill`: a student with fewer layers, from the teacher's layers, on its soft targets."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf

from bertline import cli, errors
from bertline.evaluator.config import EvaluateConfig
from bertline.model.model_dir import ModelDir
from bertline.trainer import distill, train
from bertline.model.model_config import ModelConfig
from bertline.model.modeling import BertClassifier
from tests.trainer import helpers


@pytest.fixture(scope="module")
def teacher(lang_records, tmp_path_factory):
  """A 4-layer tiny BERT fine-tuned on the language task (the teacher)."""
  root = tmp_path_factory.mktemp("teacher")
  config = helpers.tiny_model_config(str(root / "config.json"))
  with open(config) as f:
    data = json.load(f)
  data["num_hidden_layers"] = 4
  with open(config, "w") as f:
    json.dump(data, f)
  model_dir = root / "model"
  result = train.run(helpers.train_config(lang_records, model_dir, config))
  assert result.final_metrics["eval_accuracy"] >= 0.95
  return str(model_dir)


def _distil(lang_records, teacher, model_dir, *extra):
  return cli.main(["distill", "--teacher", teacher, "--student-layers", "2", "--data-dir",
                   lang_records, "--model-dir", str(model_dir), "--batch-size", "16",
                   "--epochs", "2", "--learning-rate", "1e-3", "--eval-every-steps", "10",
                   "--seed", "5", "--no-progress", *extra])


@pytest.mark.parametrize("teacher_layers,student_layers,want", [
    (6, 3, [0, 2, 4]), (12, 6, [0, 2, 4, 6, 8, 10]), (12, 4, [0, 3, 6, 9]), (4, 4, [0, 1, 2, 3]),
    (6, 1, [0])])
def test_student_layers_are_evenly_spaced_teacher_layers(teacher_layers, student_layers, want):
  assert distill.student_layer_map(teacher_layers, student_layers) == want


@pytest.mark.parametrize("n", [0, 7])
def test_a_student_deeper_than_its_teacher_is_refused(n):
  with pytest.raises(ValueError, match=f"--student-layers {n}: choose 1 to 6"):
    distill.student_layer_map(6, n)


def test_the_loss_is_hintons_mix_of_labels_and_soft_targets():
  rng = np.random.default_rng(0)
  student, teacher = rng.normal(size=(5, 3)) * 3, rng.normal(size=(5, 3)) * 3
  labels = np.array([0, 2, 1, 1, 0])
  T, alpha = 2.5, 0.3

  def softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)

  ce = -np.log(softmax(student)[np.arange(5), labels])
  p, q = softmax(teacher / T), softmax(student / T)
  want = alpha * ce + (1 - alpha) * T * T * (p * (np.log(p) - np.log(q))).sum(-1)
  got = distill.distillation_loss(tf.constant(labels), tf.constant(student, tf.float32),
                                  tf.constant(teacher, tf.float32), T, alpha).numpy()
  np.testing.assert_allclose(got, want, rtol=1e-5)
  # alpha 1: plain cross-entropy; a student equal to its teacher adds nothing at alpha 0.
  np.testing.assert_allclose(distill.distillation_loss(
      labels, tf.constant(student, tf.float32), tf.constant(teacher, tf.float32), T, 1.0), ce,
      rtol=1e-5)
  np.testing.assert_allclose(distill.distillation_loss(
      labels, tf.constant(teacher, tf.float32), tf.constant(teacher, tf.float32), T, 0.0),
      np.zeros(5), atol=1e-6)


def test_the_student_starts_as_the_teachers_chosen_layers():
  config = ModelConfig(vocab_size=50, hidden_size=16, num_hidden_layers=4, num_attention_heads=2,
                       intermediate_size=32, max_position_embeddings=32)
  teacher_model = BertClassifier(config, 3)
  student_model = BertClassifier(distill.student_config(config, 2), 3)
  ids = tf.constant([[2, 7, 9, 3, 0]])
  feats = {"input_ids": ids, "input_mask": tf.cast(ids > 0, tf.int32),
           "segment_ids": tf.zeros_like(ids)}
  teacher_model(feats), student_model(feats)
  assert distill.init_from_teacher(student_model, teacher_model, [0, 2]) == len(
      student_model.weight_map())
  t, s = teacher_model.weight_map(), student_model.weight_map()
  for name, variable in s.items():
    source = name.replace("layer_1/", "layer_2/")
    np.testing.assert_array_equal(variable.numpy(), t[source].numpy(), err_msg=name)
  # All layers kept: the student is the teacher, output for output.
  twin = BertClassifier(distill.student_config(config, 4), 3)
  twin(feats)
  distill.init_from_teacher(twin, teacher_model, [0, 1, 2, 3])
  np.testing.assert_array_equal(twin(feats)["logits"].numpy(), teacher_model(feats)["logits"].numpy())


def test_distill_trains_a_smaller_ordinary_model_dir_and_resumes_exactly(
    lang_records, teacher, tmp_path, capsys):
  from bertline.evaluator import evaluate
  from bertline.exporter import export
  assert _distil(lang_records, teacher, tmp_path / "student") == 0
  assert "distill: step 40" in capsys.readouterr().out
  md = ModelDir(str(tmp_path / "student"))
  assert md.model_config().num_hidden_layers == 2
  assert ModelDir(teacher).model_config().num_hidden_layers == 4
  settings = md.train_config()
  assert settings["teacher"] == teacher and settings["student_layers"] == 2
  assert settings["temperature"] == 2.0 and settings["alpha"] == 0.5
  # An ordinary model_dir: evaluate and export take it as they take any.
  metrics = evaluate.run(EvaluateConfig(str(tmp_path / "student"), lang_records, "dev"))["metrics"]
  assert metrics["eval_accuracy"] >= 0.9
  exported = export.export_model(str(tmp_path / "student"), str(tmp_path / "export"), version=1)
  loaded = tf.saved_model.load(exported)
  out = loaded.signatures["serving_default"](text_a=tf.constant(["good morning", "早上好"]))
  assert out["label"].numpy().tolist() == [b"en", b"zh"]
  # Stopped at step 13 and re-run: the same weights as the uninterrupted run.
  assert _distil(lang_records, teacher, tmp_path / "split", "--max-steps", "13") == 0
  assert _distil(lang_records, teacher, tmp_path / "split") == 0
  for a, b in zip(md.load_classifier("latest").weights,
                  ModelDir(str(tmp_path / "split")).load_classifier("latest").weights):
    np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_distill_flags_are_checked_before_any_work(lang_records, teacher, tmp_path, capsys):
  with pytest.raises(SystemExit) as exit_:
    cli.main(["distill", "--data-dir", lang_records, "--model-dir", str(tmp_path / "s")])
  assert exit_.value.code == errors.USAGE
  assert "--teacher is required" in capsys.readouterr().err
  assert cli.main(["distill", "--student-layers", "2", "--data-dir", lang_records,
                   "--model-dir", str(tmp_path / "s")]) == errors.BAD_INPUT
  assert "student_layers (--student-layers) needs teacher (--teacher)" in capsys.readouterr().err
  assert cli.main(["distill", "--teacher", teacher, "--data-dir", lang_records, "--model-dir",
                   str(tmp_path / "s")]) == errors.BAD_INPUT
  assert "needs student_layers (--student-layers" in capsys.readouterr().err
  assert _distil(lang_records, teacher, tmp_path / "deep", "--student-layers", "9") == \
      errors.BAD_INPUT
  assert "--student-layers 9: choose 1 to 4" in capsys.readouterr().err
  assert _distil(lang_records, str(tmp_path), tmp_path / "s2") == errors.BAD_INPUT
  assert "is not a bertline model_dir" in capsys.readouterr().err
