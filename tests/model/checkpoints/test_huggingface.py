"""model/checkpoints/huggingface.py: safetensors directories against transformers, local and remote,
and the refusals (PyTorch pickles, missing layers, a config that does not describe the weights)."""

import json
import os
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

from bertline import resources
from bertline.model import checkpoints, modeling
from tests.model.checkpoints.helpers import tiny_inputs, torch_inputs


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


def test_pytorch_pickle_is_refused_with_how_to_convert(tmp_path):
  (tmp_path / "config.json").write_text(json.dumps({"vocab_size": 10}))
  (tmp_path / "pytorch_model.bin").write_bytes(b"not read")
  with pytest.raises(ValueError, match="not loaded.*safe_serialization=True"):
    checkpoints.resolve_pretrained(str(tmp_path))


def test_hugging_face_albert_and_sequence_classifier_directories(tmp_path):
  torch = pytest.importorskip("torch")
  transformers = pytest.importorskip("transformers")
  torch.manual_seed(0)
  inputs = tiny_inputs()
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
    ref = reference(**torch_inputs(torch, inputs), output_hidden_states=True)
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
    logits = classifier(**torch_inputs(torch, inputs)).logits.numpy()
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
