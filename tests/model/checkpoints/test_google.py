"""model/checkpoints/google.py: Google's TF1 BERT and ALBERT checkpoints (albert_zh too),
run_classifier heads, Google's tanh GELU and its cased/uncased names."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf

from bertline import resources
from bertline.model import checkpoints, modeling
from tests.model.checkpoints.helpers import albert_config, tiny_inputs
from tests.trainer import fixtures


def test_google_tf1_checkpoint_loads_with_googles_tanh_gelu(tmp_path, minilm_outputs,
                                                            minilm_tanh_outputs, features):
  directory = fixtures.write_google_minilm(str(tmp_path / "uncased_L-6_H-384_A-12"))
  # The fixture really holds Google's names.
  names = dict(tf.train.list_variables(os.path.join(directory, "bert_model.ckpt")))
  assert names["bert/encoder/layer_5/attention/self/query/kernel"] == [384, 384]
  assert names["bert/encoder/layer_0/intermediate/dense/kernel"] == [384, 1536]
  files = checkpoints.resolve_pretrained(directory)
  assert files.kind == "google" and files.config_file.endswith("bert_config.json")
  assert files.vocab_file == os.path.join(directory, "vocab.txt")
  # bert_config.json says "gelu"; google-research/bert's modeling.gelu is the tanh form.
  with open(files.config_file) as f:
    assert json.load(f)["hidden_act"] == "gelu"
  assert files.model_config().hidden_act == "gelu_new"
  encoder = modeling.BertEncoder(files.model_config())
  report = checkpoints.load_pretrained(encoder, directory)
  assert report.new == [] and len(report.loaded) == len(encoder.weights)
  assert report.unused == ["cls/predictions/output_bias", "cls/seq_relationship/output_weights"]
  assert report.skipped == 2  # bert/pooler/dense/kernel/adam_m and global_step
  assert "2 unused in the file" in report.summary()
  out = encoder(features, training=False)
  # Exactly what the same weights compute with the tanh GELU ...
  for ours, reference in zip(out["encoder_outputs"], minilm_tanh_outputs["encoder_outputs"]):
    np.testing.assert_array_equal(ours.numpy(), reference.numpy())
  np.testing.assert_array_equal(out["pooled_output"], minilm_tanh_outputs["pooled_output"])
  # ... which is measurably, slightly off the erf GELU of the Hugging Face load.
  diff = np.abs(out["sequence_output"].numpy() - minilm_outputs["sequence_output"].numpy())
  assert 1e-5 < diff.max() < 0.1
  # A checkpoint prefix works as well as its directory.
  assert checkpoints.resolve_pretrained(os.path.join(directory, "bert_model.ckpt")).kind == "google"


def test_run_classifier_fine_tuned_head(tmp_path, minilm_tanh_outputs, features):
  rng = np.random.default_rng(0)
  weights = rng.normal(0, 0.5, (3, 384)).astype(np.float32)  # [num_labels, hidden]
  bias = np.array([0.1, -0.2, 0.3], np.float32)
  directory = fixtures.write_google_minilm(
      str(tmp_path / "finetuned"), checkpoint_name="model.ckpt-1234",
      extra={"output_weights": weights, "output_bias": bias,
             "output_weights/adam_v": np.zeros_like(weights)})
  files = checkpoints.resolve_pretrained(directory)
  assert files.weights.endswith("model.ckpt-1234")
  model = modeling.BertClassifier(files.model_config(), num_labels=3)
  report = checkpoints.load_pretrained(model, directory)
  assert report.new == []
  assert report.unused == ["cls/predictions/output_bias", "cls/seq_relationship/output_weights"]
  assert {modeling.HEAD_KERNEL, modeling.HEAD_BIAS} <= set(report.loaded)
  logits = model(features, training=False)["logits"].numpy()
  # run_classifier.py fine-tunes and serves with Google's tanh GELU.
  assert files.model_config().hidden_act == "gelu_new"
  expected = minilm_tanh_outputs["pooled_output"].numpy() @ weights.T + bias
  np.testing.assert_allclose(logits, expected, atol=1e-4)
  # A classifier with another label count is refused, naming the variable.
  with pytest.raises(ValueError, match=r"output_weights: checkpoint shape \[384, 3\] != model "
                                       r"shape \[384, 2\].*num_labels"):
    checkpoints.load_pretrained(modeling.BertClassifier(files.model_config(), 2), directory)
  # A pre-trained checkpoint leaves the head new.
  hf_config = checkpoints.resolve_pretrained(resources.minilm_dir()).model_config()
  fresh = modeling.BertClassifier(hf_config, num_labels=3)
  report = checkpoints.load_pretrained(fresh, resources.minilm_dir())
  assert report.new == [modeling.HEAD_KERNEL, modeling.HEAD_BIAS]


def _google_modeling_gelu():
  """google-research/bert's modeling.gelu, its own source from bert-tensorflow 1.0.4.

  bert/modeling.py imports tensorflow.contrib at the top, so the module cannot be
  imported under TF2; the function's source is compiled alone, with tf.compat.v1.
  """
  import ast
  bert = pytest.importorskip("bert", reason="bert-tensorflow is a test dependency (make venv)")
  path = os.path.join(os.path.dirname(bert.__file__), "modeling.py")
  with open(path) as f:
    tree = ast.parse(f.read())
  node = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "gelu")
  namespace = {"tf": tf.compat.v1, "np": np}
  exec(compile(ast.Module(body=[node], type_ignores=[]), path, "exec"), namespace)
  return namespace["gelu"]


def test_tanh_gelu_for_google_checkpoints_is_google_modeling_gelu(tmp_path):
  google_gelu = _google_modeling_gelu()
  x = np.linspace(-8, 8, 4001).astype(np.float32)
  theirs = google_gelu(tf.constant(x)).numpy()
  # The activation bertline builds for a Google TF1 checkpoint whose config says "gelu".
  with open(os.path.join(resources.minilm_dir(), "config.json")) as f:
    (tmp_path / "bert_config.json").write_text(json.dumps(fixtures.google_config(json.load(f))))
  fixtures.write_tf1_checkpoint({"bert/embeddings/word_embeddings": np.zeros([4, 2], np.float32)},
                                str(tmp_path / "bert_model.ckpt"))
  files = checkpoints.resolve_pretrained(str(tmp_path))
  assert files.kind == "google"
  ours = modeling.get_activation(files.model_config().hidden_act)(tf.constant(x)).numpy()
  np.testing.assert_allclose(ours, theirs, rtol=1e-6, atol=1e-6)
  # The erf form (Hugging Face's "gelu") is measurably different.
  erf = modeling.get_activation("gelu")(tf.constant(x)).numpy()
  assert np.abs(erf - theirs).max() > 1e-4


@pytest.mark.parametrize("groups", [1, 2])
def test_albert_tf1_checkpoint_loads_and_runs(tmp_path, groups):
  directory = str(tmp_path / "albert_tiny")
  os.makedirs(directory)
  albert_config(directory, num_hidden_groups=groups, inner_group_num=1)
  tensors = fixtures.tiny_albert_tensors(np.random.default_rng(2), 30, 8, 16, 24, 12, groups)
  tensors["cls/predictions/transform/dense/kernel"] = np.zeros([16, 16], np.float32)
  fixtures.write_tf1_checkpoint(tensors, os.path.join(directory, "albert_model.ckpt"))
  files = checkpoints.resolve_pretrained(directory)
  assert files.kind == "albert"
  config = files.model_config()
  assert config.is_albert and config.num_hidden_groups == groups
  assert config.hidden_act == "gelu_new"  # ALBERT's TF code computes "gelu" with tanh
  encoder = modeling.BertEncoder(config)
  report = checkpoints.load_pretrained(encoder, directory)
  assert report.new == [] and report.unused == ["cls/predictions/transform/dense/kernel"]
  inputs = tiny_inputs()
  out = encoder(inputs, training=False)
  layers, pooled = fixtures.numpy_albert(tensors, inputs["input_ids"], inputs["input_mask"],
                                         inputs["segment_ids"], 4, 4, groups, tanh_gelu=True)
  for ours, reference in zip(out["encoder_outputs"], layers):
    np.testing.assert_allclose(ours.numpy(), reference, atol=1e-4)
  np.testing.assert_allclose(out["pooled_output"].numpy(), pooled, atol=1e-4)


def test_albert_zh_checkpoint_loads_and_runs(tmp_path):
  directory = str(tmp_path / "albert_tiny_zh")
  os.makedirs(directory)
  albert_config(directory, ln_type="postln")
  rng = np.random.default_rng(3)
  google = fixtures.tiny_albert_tensors(rng, 30, 8, 16, 24, 12)
  # brightmart's albert_zh: BERT's names under layer_shared, a bias-free word
  # projection, position/type embeddings in the hidden width.
  tensors = {}
  for name, value in google.items():
    for bert_inner, albert_inner in fixtures.GOOGLE_TO_ALBERT_LAYER.items():
      old = f"bert/encoder/transformer/group_0/inner_group_0/{albert_inner}/"
      if name.startswith(old):
        name = "bert/encoder/layer_shared/" + bert_inner + "/" + name[len(old):]
        break
    tensors[name] = value
  del tensors["bert/encoder/embedding_hidden_mapping_in/kernel"]
  del tensors["bert/encoder/embedding_hidden_mapping_in/bias"]
  tensors["bert/embeddings/word_embeddings_2"] = rng.normal(0, 0.2, (8, 16)).astype(np.float32)
  for name, rows in (("position_embeddings", 12), ("token_type_embeddings", 2)):
    tensors[f"bert/embeddings/{name}"] = rng.normal(0, 0.2, (rows, 16)).astype(np.float32)
  tensors["bert/embeddings/LayerNorm/gamma"] = np.ones(16, np.float32)
  tensors["bert/embeddings/LayerNorm/beta"] = np.zeros(16, np.float32)
  fixtures.write_tf1_checkpoint(tensors, os.path.join(directory, "albert_model.ckpt"))
  files = checkpoints.resolve_pretrained(directory)
  assert files.kind == "albert_zh"
  # brightmart/albert_zh's modeling.gelu is Google's tanh form too.
  assert files.model_config().hidden_act == "gelu_new"
  encoder = modeling.BertEncoder(files.model_config())
  report = checkpoints.load_pretrained(encoder, directory)
  assert report.new == [] and report.unused == []
  inputs = tiny_inputs()
  out = encoder(inputs, training=False)
  reference_tensors = dict(google)
  reference_tensors.update({k: v for k, v in tensors.items() if k.startswith("bert/embeddings/")})
  layers, pooled = fixtures.numpy_albert(reference_tensors, inputs["input_ids"],
                                         inputs["input_mask"], inputs["segment_ids"], 4, 4,
                                         word_projection=True, tanh_gelu=True)
  np.testing.assert_allclose(out["sequence_output"].numpy(), layers[-1], atol=1e-4)
  np.testing.assert_allclose(out["pooled_output"].numpy(), pooled, atol=1e-4)


@pytest.mark.parametrize("name, do_lower_case, message", [
    ("cased_L-12_H-768_A-12", True, "do_lower_case=True but .* cased model"),
    ("chinese_L-12_H-768_A-12", False, "do_lower_case=False but .* uncased model"),
])
def test_case_mismatch_for_known_google_checkpoints(tmp_path, name, do_lower_case, message):
  directory = str(tmp_path / name)
  os.makedirs(directory)
  albert_config(directory)
  fixtures.write_tf1_checkpoint(
      fixtures.tiny_albert_tensors(np.random.default_rng(0), 30, 8, 16, 24, 12),
      os.path.join(directory, "bert_model.ckpt"))
  files = checkpoints.resolve_pretrained(directory)
  with pytest.raises(ValueError, match=message):
    files.validate_for(do_lower_case=do_lower_case)
  files.validate_for(do_lower_case=not do_lower_case)
