"""Checkpoint loading: real MiniLM weights against transformers, Google/ALBERT TF1 formats,
run_classifier heads, bertline model_dirs, and every bad-input error."""

import json
import os
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

from bertline import corpora, resources, schema
from bertline.preprocessing.features import pack_features
from bertline.preprocessing.tokenization import BertTokenizer
from bertline.model import checkpoints, modeling
from bertline.model.model_config import ModelConfig
from tests.trainer import fixtures

MAX_SEQ_LENGTH = 48


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
    ref = reference(**_torch_inputs(torch, features), output_hidden_states=True)
  for ours, theirs in zip(out["encoder_outputs"], ref.hidden_states[1:]):
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), atol=1e-4, rtol=0)
  np.testing.assert_allclose(out["pooled_output"].numpy(), ref.pooler_output.numpy(),
                             atol=1e-4, rtol=0)
  return out


def test_minilm_matches_transformers_every_layer(minilm, minilm_outputs, features):
  torch = pytest.importorskip("torch")
  transformers = pytest.importorskip("transformers")
  encoder, report = minilm
  assert report.kind == "huggingface" and report.new == [] and report.unused == []
  assert len(report.loaded) == len(encoder.weights) == 5 + 6 * 16 + 2
  reference = transformers.BertModel.from_pretrained(resources.minilm_dir(),
                                                     attn_implementation="eager").eval()
  with torch.no_grad():
    ref = reference(input_ids=torch.tensor(features["input_ids"], dtype=torch.long),
                    attention_mask=torch.tensor(features["input_mask"], dtype=torch.long),
                    token_type_ids=torch.tensor(features["segment_ids"], dtype=torch.long),
                    output_hidden_states=True)
  mask = features["input_mask"].astype(bool)
  assert len(ref.hidden_states) - 1 == len(minilm_outputs["encoder_outputs"]) == 6
  for ours, theirs in zip(minilm_outputs["encoder_outputs"], ref.hidden_states[1:]):
    # Padding positions are compared too: both models compute them the same way.
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), atol=1e-4, rtol=0)
    assert np.abs(ours.numpy()[mask]).max() > 1  # real, non-trivial activations
  np.testing.assert_allclose(minilm_outputs["pooled_output"].numpy(),
                             ref.pooler_output.numpy(), atol=1e-4, rtol=0)


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


def _albert_config(directory, **extra):
  config = dict(vocab_size=30, embedding_size=8, hidden_size=16, num_hidden_layers=4,
                num_attention_heads=4, intermediate_size=24, max_position_embeddings=12,
                type_vocab_size=2, hidden_act="gelu", hidden_dropout_prob=0,
                attention_probs_dropout_prob=0, initializer_range=0.02, **extra)
  with open(os.path.join(directory, "albert_config.json"), "w") as f:
    json.dump(config, f)
  with open(os.path.join(directory, "vocab.txt"), "w") as f:
    f.write("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]"] + [f"w{i}" for i in range(26)]) + "\n")
  return config


def _tiny_inputs():
  rng = np.random.default_rng(1)
  ids = rng.integers(1, 30, (3, 10)).astype(np.int32)
  mask = (np.arange(10)[None] < np.array([[10], [6], [3]])).astype(np.int32)
  segments = (np.arange(10)[None] >= 4).astype(np.int32) * mask
  return {"input_ids": ids * mask, "input_mask": mask, "segment_ids": segments}


@pytest.mark.parametrize("groups", [1, 2])
def test_albert_tf1_checkpoint_loads_and_runs(tmp_path, groups):
  directory = str(tmp_path / "albert_tiny")
  os.makedirs(directory)
  _albert_config(directory, num_hidden_groups=groups, inner_group_num=1)
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
  inputs = _tiny_inputs()
  out = encoder(inputs, training=False)
  layers, pooled = fixtures.numpy_albert(tensors, inputs["input_ids"], inputs["input_mask"],
                                         inputs["segment_ids"], 4, 4, groups, tanh_gelu=True)
  for ours, reference in zip(out["encoder_outputs"], layers):
    np.testing.assert_allclose(ours.numpy(), reference, atol=1e-4)
  np.testing.assert_allclose(out["pooled_output"].numpy(), pooled, atol=1e-4)


def test_albert_zh_checkpoint_loads_and_runs(tmp_path):
  directory = str(tmp_path / "albert_tiny_zh")
  os.makedirs(directory)
  _albert_config(directory, ln_type="postln")
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
  inputs = _tiny_inputs()
  out = encoder(inputs, training=False)
  reference_tensors = dict(google)
  reference_tensors.update({k: v for k, v in tensors.items() if k.startswith("bert/embeddings/")})
  layers, pooled = fixtures.numpy_albert(reference_tensors, inputs["input_ids"],
                                         inputs["input_mask"], inputs["segment_ids"], 4, 4,
                                         word_projection=True, tanh_gelu=True)
  np.testing.assert_allclose(out["sequence_output"].numpy(), layers[-1], atol=1e-4)
  np.testing.assert_allclose(out["pooled_output"].numpy(), pooled, atol=1e-4)


def test_bertline_model_dir_round_trip(tmp_path, features):
  config = ModelConfig(vocab_size=30522, hidden_size=16, num_hidden_layers=1,
                       num_attention_heads=2, intermediate_size=32)
  trained = modeling.BertClassifier(config, num_labels=4)
  model_dir = str(tmp_path / "model_dir")
  config.write(os.path.join(model_dir, schema.MODEL_CONFIG_FILE))
  manager = tf.train.CheckpointManager(tf.train.Checkpoint(model=trained, step=tf.Variable(7)),
                                       os.path.join(model_dir, schema.BEST_SUBDIR), max_to_keep=1)
  manager.save()
  files = checkpoints.resolve_pretrained(model_dir)
  assert files.kind == "bertline" and files.model_config() == config
  again = modeling.BertClassifier(files.model_config(), num_labels=4)
  report = checkpoints.load_pretrained(again, model_dir)
  assert report.new == [] and len(report.loaded) == len(again.weights)
  np.testing.assert_array_equal(again(features)["logits"], trained(features)["logits"])
  # Warm start of an encoder from a fine-tuned model: the head goes unused.
  encoder = modeling.BertEncoder(config)
  report = checkpoints.load_pretrained(encoder, manager.latest_checkpoint)
  assert report.unused == [modeling.HEAD_BIAS, modeling.HEAD_KERNEL]


# --- bad input ------------------------------------------------------------------------
def test_directory_without_checkpoint(tmp_path):
  with pytest.raises(FileNotFoundError, match="No recognised checkpoint in .*bert_model.ckpt"):
    checkpoints.resolve_pretrained(str(tmp_path))
  with pytest.raises(FileNotFoundError, match="No pretrained model at"):
    checkpoints.resolve_pretrained(str(tmp_path / "missing"))
  (tmp_path / schema.MODEL_CONFIG_FILE).write_text("{}")
  with pytest.raises(FileNotFoundError, match="without a checkpoint"):
    checkpoints.resolve_pretrained(str(tmp_path))


def test_pytorch_pickle_is_refused_with_how_to_convert(tmp_path):
  (tmp_path / "config.json").write_text(json.dumps({"vocab_size": 10}))
  (tmp_path / "pytorch_model.bin").write_bytes(b"not read")
  with pytest.raises(ValueError, match="not loaded.*safe_serialization=True"):
    checkpoints.resolve_pretrained(str(tmp_path))


def test_validate_for_vocab_length_and_case(tmp_path):
  files = checkpoints.resolve_pretrained(resources.minilm_dir())
  assert files.validate_for(128, do_lower_case=True).vocab_size == 30522
  with pytest.raises(ValueError, match="Cannot use sequence length 513 .* up to sequence "
                                       "length 512 .*max_position_embeddings"):
    files.validate_for(513)
  short_vocab = tmp_path / "vocab.txt"
  short_vocab.write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\nhello\n")
  with pytest.raises(ValueError, match="vocab.txt has 5 tokens but .*config.json says "
                                       "vocab_size 30522"):
    files.validate_for(128, vocab_file=str(short_vocab))
  # nreimers/MiniLM-L6-H384-uncased: an uncased model (named in its config.json).
  with pytest.raises(ValueError, match="do_lower_case=False .*uncased"):
    files.validate_for(128, do_lower_case=False)


@pytest.mark.parametrize("name, do_lower_case, message", [
    ("cased_L-12_H-768_A-12", True, "do_lower_case=True but .* cased model"),
    ("chinese_L-12_H-768_A-12", False, "do_lower_case=False but .* uncased model"),
])
def test_case_mismatch_for_known_google_checkpoints(tmp_path, name, do_lower_case, message):
  directory = str(tmp_path / name)
  os.makedirs(directory)
  _albert_config(directory)
  fixtures.write_tf1_checkpoint(
      fixtures.tiny_albert_tensors(np.random.default_rng(0), 30, 8, 16, 24, 12),
      os.path.join(directory, "bert_model.ckpt"))
  files = checkpoints.resolve_pretrained(directory)
  with pytest.raises(ValueError, match=message):
    files.validate_for(do_lower_case=do_lower_case)
  files.validate_for(do_lower_case=not do_lower_case)


def test_shape_and_config_mismatch_errors_name_the_variable(tmp_path):
  small = ModelConfig(vocab_size=100, hidden_size=384, num_hidden_layers=6,
                      num_attention_heads=12, intermediate_size=1536)
  with pytest.raises(ValueError, match="vocab_size: checkpoint 30522 vs model 100"):
    checkpoints.load_pretrained(modeling.BertEncoder(small), resources.minilm_dir())
  with pytest.raises(ValueError, match=r"embeddings.word_embeddings.weight: checkpoint shape "
                                       r"\[30522, 384\] != model shape \[100, 384\] \(vocab_size"):
    checkpoints.load_pretrained(modeling.BertEncoder(small), resources.minilm_dir(),
                                check_config=False)


def test_checkpoint_without_config(tmp_path):
  fixtures.write_tf1_checkpoint({"bert/embeddings/word_embeddings": np.zeros([4, 2], np.float32)},
                                str(tmp_path / "bert_model.ckpt"))
  with pytest.raises(FileNotFoundError, match="No config beside checkpoint .*bert_config.json"):
    checkpoints.resolve_pretrained(str(tmp_path))
  other = tmp_path / "other"
  fixtures.write_tf1_checkpoint({"dense/kernel": np.zeros([4, 2], np.float32)},
                                str(other / "model.ckpt"))
  with pytest.raises(ValueError, match="not a BERT/ALBERT checkpoint"):
    checkpoints.resolve_pretrained(str(other))


def _torch_inputs(torch, inputs):
  return dict(input_ids=torch.tensor(inputs["input_ids"], dtype=torch.long),
              attention_mask=torch.tensor(inputs["input_mask"], dtype=torch.long),
              token_type_ids=torch.tensor(inputs["segment_ids"], dtype=torch.long))


def test_hugging_face_albert_and_sequence_classifier_directories(tmp_path):
  torch = pytest.importorskip("torch")
  transformers = pytest.importorskip("transformers")
  torch.manual_seed(0)
  inputs = _tiny_inputs()
  # ALBERT: factorised embeddings, 2 groups of 2 inner layers shared over 4 layers, gelu_new.
  albert_config = transformers.AlbertConfig(
      vocab_size=30, embedding_size=8, hidden_size=16, num_hidden_layers=4, num_hidden_groups=2,
      inner_group_num=2,
      num_attention_heads=4, intermediate_size=24, max_position_embeddings=12,
      hidden_act="gelu_new")
  reference = transformers.AlbertModel(albert_config).eval()
  reference.save_pretrained(str(tmp_path / "albert"), safe_serialization=True)
  files = checkpoints.resolve_pretrained(str(tmp_path / "albert"))
  assert files.kind == "huggingface"
  config = files.model_config()
  assert config.is_albert and config.hidden_act == "gelu_new" and config.num_hidden_groups == 2
  assert config.inner_group_num == 2
  encoder = modeling.BertEncoder(config)
  report = checkpoints.load_pretrained(encoder, files)
  assert report.new == [] and report.unused == []
  with torch.no_grad():
    ref = reference(**_torch_inputs(torch, inputs), output_hidden_states=True)
  out = encoder(inputs, training=False)
  # transformers records every inner layer's output; encoder_outputs holds one
  # per layer application (after its group's 2 inner layers).
  assert len(ref.hidden_states) == 1 + 4 * 2 and len(out["encoder_outputs"]) == 4
  for ours, theirs in zip(out["encoder_outputs"], ref.hidden_states[2::2]):
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), atol=1e-5)
  np.testing.assert_allclose(out["pooled_output"].numpy(), ref.pooler_output.numpy(), atol=1e-5)

  # A Hugging Face fine-tuned classifier: its head loads into BertClassifier.
  bert_config = transformers.BertConfig(
      vocab_size=30, hidden_size=16, num_hidden_layers=2, num_attention_heads=4,
      intermediate_size=24, max_position_embeddings=12, num_labels=3)
  classifier = transformers.BertForSequenceClassification(bert_config).eval()
  classifier.save_pretrained(str(tmp_path / "clf"), safe_serialization=True)
  files = checkpoints.resolve_pretrained(str(tmp_path / "clf"))
  model = modeling.BertClassifier(files.model_config(), num_labels=3)
  report = checkpoints.load_pretrained(model, files)
  assert report.new == [] and report.unused == []
  with torch.no_grad():
    logits = classifier(**_torch_inputs(torch, inputs)).logits.numpy()
  np.testing.assert_allclose(model(inputs, training=False)["logits"].numpy(), logits, atol=1e-5)


def test_remote_hugging_face_directory(minilm):
  """gs:// and other tf.io.gfile file systems (here TensorFlow's in-memory ram://)."""
  for name in ("config.json", "model.safetensors", "vocab.txt"):
    tf.io.gfile.copy(os.path.join(resources.minilm_dir(), name), f"ram://minilm/{name}",
                     overwrite=True)
  files = checkpoints.resolve_pretrained("ram://minilm/")
  assert files.kind == "huggingface" and files.vocab_file == "ram://minilm/vocab.txt"
  files.validate_for(128, do_lower_case=True)
  encoder = modeling.BertEncoder(files.model_config())
  report = checkpoints.load_pretrained(encoder, files)
  assert report.new == [] and report.unused == []
  local = minilm[0].weight_map()
  for name, variable in encoder.weight_map().items():
    np.testing.assert_array_equal(variable.numpy(), local[name].numpy())


@pytest.mark.slow
@pytest.mark.parametrize("policy, atol", [("mixed_bfloat16", 0.02), ("mixed_float16", 0.005)])
def test_minilm_mixed_precision_stays_close_to_float32(minilm_outputs, features, policy, atol):
  keras.mixed_precision.set_global_policy(policy)
  try:
    files = checkpoints.resolve_pretrained(resources.minilm_dir())
    model = modeling.BertClassifier(files.model_config(), num_labels=2)
    checkpoints.load_pretrained(model, files)
    out = model.encoder(features, training=False)
    assert model(features, training=False)["probabilities"].dtype == tf.float32
  finally:
    keras.mixed_precision.set_global_policy("float32")
  pooled = tf.cast(out["pooled_output"], tf.float32).numpy()
  assert np.abs(pooled - minilm_outputs["pooled_output"].numpy()).max() < atol


def test_a_checkpoint_missing_encoder_layers_is_refused_naming_them(tmp_path):
  """Real MiniLM weights without their last layer, under the config that promises 6 layers:
  loading must fail before any weight is assigned, naming the missing layer's weights."""
  import shutil
  from safetensors.numpy import load_file, save_file
  src = resources.minilm_dir()
  tensors = load_file(os.path.join(src, "model.safetensors"))
  kept = {k: v for k, v in tensors.items() if not k.startswith("encoder.layer.5.")}
  assert len(kept) == len(tensors) - 16
  save_file(kept, str(tmp_path / "model.safetensors"))
  shutil.copy(os.path.join(src, "config.json"), tmp_path / "config.json")
  files = checkpoints.resolve_pretrained(str(tmp_path))
  encoder = modeling.BertEncoder(files.model_config())
  before = [w.numpy().copy() for w in encoder.weights]
  with pytest.raises(ValueError, match=r"lacks 16 encoder weight\(s\) the model needs: "
                     r"bert/encoder/layer_5/attention/self/query/kernel"):
    checkpoints.load_pretrained(encoder, files)
  assert all(np.array_equal(b, w.numpy()) for b, w in zip(before, encoder.weights))
  # A classifier head is the one thing a pre-trained checkpoint may leave new.
  classifier = modeling.BertClassifier(checkpoints.resolve_pretrained(src).model_config(), 3)
  report = checkpoints.load_pretrained(classifier, src)
  assert report.new == [modeling.HEAD_KERNEL, modeling.HEAD_BIAS]


def test_a_config_that_does_not_describe_the_weights_gets_a_short_exact_message(tmp_path):
  """Another hidden size makes nearly every weight mismatch: a few are named, the rest counted,
  and the vocab hint appears only when the vocabulary axis is what differs."""
  import shutil
  src = resources.minilm_dir()
  for name in ("model.safetensors", "vocab.txt"):
    shutil.copy(os.path.join(src, name), tmp_path / name)
  with open(os.path.join(src, "config.json")) as f:
    config = json.load(f)
  config.update(hidden_size=768, intermediate_size=3072)  # BERT-base's, not these weights'
  (tmp_path / "config.json").write_text(json.dumps(config))
  files = checkpoints.resolve_pretrained(str(tmp_path))
  with pytest.raises(ValueError) as e:
    checkpoints.load_pretrained(modeling.BertEncoder(files.model_config()), files)
  message = str(e.value)
  assert len(message) < 800, len(message)
  assert re.search(r"\d+ weight\(s\) have other shapes than .*config\.json describes", message)
  assert "embeddings.word_embeddings.weight: checkpoint shape [30522, 384] != model shape " \
         "[30522, 768]" in message and "vocab_size differs" not in message
  assert re.search(r"; and \d+ more\. Use the config released with these weights\.", message)
