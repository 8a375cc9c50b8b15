"""The Keras encoder and classifier on tiny models: shapes, padding, ALBERT sharing, precision."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from bertline.model import modeling
from bertline.model.model_config import ModelConfig

TINY = dict(vocab_size=40, hidden_size=16, num_hidden_layers=2, num_attention_heads=4,
            intermediate_size=32, max_position_embeddings=24)


def _features(batch=3, seq=9, pad_from=(9, 5, 2), seed=0):
  rng = np.random.default_rng(seed)
  ids = rng.integers(1, TINY["vocab_size"], (batch, seq)).astype(np.int32)
  mask = (np.arange(seq)[None, :] < np.array(pad_from)[:, None]).astype(np.int32)
  segments = (np.arange(seq)[None, :] >= 3).astype(np.int32) * mask
  return {"input_ids": ids * mask, "input_mask": mask, "segment_ids": segments}


@pytest.fixture(autouse=True)
def _float32_policy():
  keras.mixed_precision.set_global_policy("float32")
  yield
  keras.mixed_precision.set_global_policy("float32")


def test_encoder_outputs_and_padding_invariance():
  keras.utils.set_random_seed(1)
  encoder = modeling.BertEncoder(ModelConfig(**TINY))
  f = _features()
  out = encoder(f)
  assert out["sequence_output"].shape == (3, 9, 16)
  assert out["pooled_output"].shape == (3, 16)
  assert len(out["encoder_outputs"]) == 2
  np.testing.assert_array_equal(out["encoder_outputs"][-1], out["sequence_output"])
  # More padding must not change the real positions: the mask hides it.
  longer = {k: np.pad(v, [(0, 0), (0, 6)]) for k, v in f.items()}
  out2 = encoder(longer)
  for row, n in enumerate((9, 5, 2)):
    np.testing.assert_allclose(out2["sequence_output"][row, :n], out["sequence_output"][row, :n],
                               atol=1e-5)
  np.testing.assert_allclose(out2["pooled_output"], out["pooled_output"], atol=1e-5)
  # int64 features (as parsed from TFRecords) are accepted.
  out3 = encoder({k: v.astype(np.int64) for k, v in f.items()})
  np.testing.assert_array_equal(out3["pooled_output"], out["pooled_output"])


def test_pooler_is_dense_tanh_of_cls():
  encoder = modeling.BertEncoder(ModelConfig(**TINY))
  out = encoder(_features())
  w = encoder.weight_map()
  cls = out["sequence_output"].numpy()[:, 0]
  expected = np.tanh(cls @ w["bert/pooler/dense/kernel"].numpy() + w["bert/pooler/dense/bias"].numpy())
  np.testing.assert_allclose(out["pooled_output"], expected, atol=1e-5)


def test_weight_map_covers_every_weight_once():
  for config in (ModelConfig(**TINY),
                 ModelConfig(**{**TINY, "num_hidden_layers": 4}, embedding_size=8,
                             num_hidden_groups=2, model_type="albert")):
    model = modeling.BertClassifier(config, num_labels=3)
    ids = {id(v) for v in model.weight_map().values()}
    assert ids == {id(modeling._variable(w)) for w in model.weights}
    assert len(ids) == len(model.weight_map())


def test_albert_shares_layers_and_factorises_embeddings():
  bert = modeling.BertEncoder(ModelConfig(**{**TINY, "num_hidden_layers": 6}))
  albert_config = ModelConfig(**{**TINY, "num_hidden_layers": 6}, embedding_size=8,
                              num_hidden_groups=2, model_type="albert")
  albert = modeling.BertEncoder(albert_config)
  names = albert.weight_map()
  assert names["bert/embeddings/word_embeddings"].shape == (40, 8)
  assert names["bert/encoder/embedding_hidden_mapping_in/kernel"].shape == (8, 16)
  assert len([n for n in names if n.endswith("self/query/kernel")]) == 2
  assert len(albert.weights) < len(bert.weights)
  assert [albert_config.group_of_layer(i) for i in range(6)] == [0, 0, 0, 1, 1, 1]
  out = albert(_features())
  assert len(out["encoder_outputs"]) == 6 and out["pooled_output"].shape == (3, 16)
  # Layers 0..2 apply the same weights: the 2nd and 3rd applications differ
  # only through their inputs, so the shared layer maps them as one function.
  layer = albert.groups[0][0]
  again = layer(out["encoder_outputs"][0], _features()["input_mask"])
  np.testing.assert_allclose(again, out["encoder_outputs"][1], atol=1e-5)


def test_albert_zh_word_projection():
  config = ModelConfig(**TINY, embedding_size=8, model_type="albert",
                       embedding_projection="word_projection")
  names = modeling.BertEncoder(config).weight_map()
  assert names["bert/embeddings/word_embeddings"].shape == (40, 8)
  assert names["bert/embeddings/word_embeddings_2"].shape == (8, 16)
  assert names["bert/embeddings/position_embeddings"].shape == (24, 16)


def test_gelu_is_exact_erf_and_activations():
  x = np.linspace(-5, 5, 41).astype(np.float32)
  exact = np.array([0.5 * v * (1 + math.erf(v / math.sqrt(2))) for v in x])
  np.testing.assert_allclose(modeling.get_activation("gelu")(tf.constant(x)), exact, atol=1e-6)
  tanh = modeling.get_activation("gelu_new")(tf.constant(x)).numpy()
  assert 1e-4 < np.max(np.abs(tanh - exact)) < 1e-2  # the approximation, not the same function
  np.testing.assert_allclose(modeling.get_activation("silu")(tf.constant(x)),
                             x / (1 + np.exp(-x)), atol=1e-6)


def test_classifier_head_and_loss():
  keras.utils.set_random_seed(3)
  model = modeling.BertClassifier(ModelConfig(**TINY), num_labels=5)
  out = model({**_features(), "label_ids": np.zeros([3, 1], np.int64)})
  assert out["logits"].shape == (3, 5) and out["logits"].dtype == tf.float32
  np.testing.assert_allclose(out["probabilities"], tf.nn.softmax(out["logits"]), atol=1e-6)
  kernel = model.head.kernel.numpy()
  assert np.all(np.abs(kernel) <= 0.04) and 0.01 < kernel.std() < 0.03  # truncated normal 0.02
  np.testing.assert_array_equal(model.head.bias.numpy(), 0)
  # Dropout 0.1 on the pooled output only while training.
  assert model.layers[-3].rate == pytest.approx(0.1)
  labels = np.array([[4], [0], [2]])
  logits = out["logits"].numpy()
  expected = -np.log(np.exp(logits) / np.exp(logits).sum(-1, keepdims=True))[np.arange(3), labels[:, 0]]
  np.testing.assert_allclose(modeling.per_example_loss(labels, out["logits"]), expected, rtol=1e-5)
  assert modeling.per_example_loss(labels[:, 0], out["logits"]).shape == (3,)


@pytest.mark.parametrize("policy, compute", [("mixed_float16", tf.float16),
                                              ("mixed_bfloat16", tf.bfloat16)])
def test_mixed_precision_keeps_layer_norm_softmax_and_head_in_float32(policy, compute):
  keras.mixed_precision.set_global_policy(policy)
  model = modeling.BertClassifier(ModelConfig(**TINY), num_labels=2)
  assert all(v.dtype == tf.float32 for v in model.weight_map().values())
  layer = model.encoder.groups[0][0]
  assert layer.compute_dtype == compute
  assert layer.attention_layer_norm.compute_dtype == "float32"
  out = model(_features())
  assert out["logits"].dtype == tf.float32 and out["probabilities"].dtype == tf.float32
  assert model.encoder(_features())["sequence_output"].dtype == compute
  keras.mixed_precision.set_global_policy("float32")
  reference = modeling.BertClassifier(ModelConfig(**TINY), num_labels=2)
  for name, v in reference.weight_map().items():
    v.assign(model.weight_map()[name])
  np.testing.assert_allclose(out["probabilities"], reference(_features())["probabilities"],
                             atol=0.02)


def test_jit_compiled_inference_matches_eager():
  model = modeling.BertClassifier(ModelConfig(**TINY), num_labels=2)
  f = _features()
  for jit in (True, False):
    np.testing.assert_allclose(modeling.inference_fn(model, jit_compile=jit)(f)["logits"],
                               model(f, training=False)["logits"], atol=1e-5)


def test_bad_classifier_arguments():
  with pytest.raises(ValueError, match="num_labels"):
    modeling.BertClassifier(ModelConfig(**TINY), num_labels=0)
  with pytest.raises(ValueError, match="dropout_rate"):
    modeling.BertClassifier(ModelConfig(**TINY), num_labels=2, dropout_rate=1.0)


@pytest.mark.parametrize("albert", [False, True])
def test_saved_keras_model_loads_without_custom_objects(tmp_path, albert):
  """BertEncoder and BertClassifier are registered with keras.saving: a `.keras` file
  loads with keras.saving.load_model alone, with the same weights and outputs."""
  keras.utils.set_random_seed(3)
  config = ModelConfig(**dict(TINY, **({"model_type": "albert", "embedding_size": 8}
                                       if albert else {})))
  classifier = modeling.BertClassifier(config, num_labels=3, dropout_rate=0.2)
  f = _features()
  want = classifier(f)["probabilities"].numpy()
  path = str(tmp_path / "classifier.keras")
  classifier.save(path)
  loaded = keras.saving.load_model(path)  # no custom_objects
  assert isinstance(loaded, modeling.BertClassifier) and loaded.dropout_rate == 0.2
  assert loaded.config == config
  np.testing.assert_allclose(loaded(f)["probabilities"].numpy(), want, atol=1e-6)
  encoder_path = str(tmp_path / "encoder.keras")
  classifier.encoder.save(encoder_path)
  encoder = keras.saving.load_model(encoder_path)
  assert isinstance(encoder, modeling.BertEncoder)
  np.testing.assert_allclose(encoder(f)["pooled_output"].numpy(),
                             classifier.encoder(f)["pooled_output"].numpy(), atol=1e-6)


@pytest.mark.parametrize("shape", [(4, 3, 128, 128), (7, 5, 33)])
def test_dropout_16bit_rate_scale_determinism_and_gradient(shape):
  x = tf.random.stateless_uniform(shape, [3, 4], minval=0.5, maxval=1.5)
  seed = tf.constant([11, 12], tf.int32)
  y = modeling.dropout_16bit(x, 0.1, seed).numpy()
  np.testing.assert_array_equal(y, modeling.dropout_16bit(x, 0.1, seed).numpy())
  assert not np.array_equal(y, modeling.dropout_16bit(x, 0.1, tf.constant([11, 13])).numpy())
  kept = y != 0
  scale = 65536 / (65536 - 6554)           # round(0.1 * 65536) = 6554 draws dropped
  np.testing.assert_allclose(y[kept], x.numpy()[kept] * np.float32(scale), rtol=1e-6)
  n = kept.size
  # The dropped fraction is binomial(n, 0.100006): within 5 standard deviations.
  assert abs((n - kept.sum()) / n - 6554 / 65536) < 5 * math.sqrt(0.1 * 0.9 / n)
  with tf.GradientTape() as tape:
    tape.watch(x)
    out = modeling.dropout_16bit(x, 0.1, seed)
  np.testing.assert_allclose(tape.gradient(out, x), kept * np.float32(scale), rtol=1e-6)
  np.testing.assert_array_equal(modeling.dropout_16bit(x, 0.0, seed), x)


def test_dropout_layer_draws_a_new_mask_per_call_and_none_at_inference():
  layer = modeling.Dropout(0.5, seed=7)
  x = tf.ones([64, 64])
  first, second = layer(x, training=True), layer(x, training=True)
  assert set(np.unique(first.numpy())) == {0.0, 2.0}
  assert not np.array_equal(first, second)
  np.testing.assert_array_equal(layer(x, training=False), x)
  again = modeling.Dropout(0.5, seed=7)
  np.testing.assert_array_equal(again(x, training=True), first)


@pytest.mark.parametrize("shape", [(3, 9, 16), (5, 16)])
def test_layer_norm_training_gradient_equals_keras(shape):
  """Same forward numbers as Keras' LayerNormalization, and the same gradients."""
  ours = modeling.LayerNormalization(axis=-1, epsilon=1e-12, dtype="float32")
  keras_ln = keras.layers.LayerNormalization(axis=-1, epsilon=1e-12, dtype="float32")
  for layer in (ours, keras_ln):
    layer.build(shape)
  rng = np.random.default_rng(0)
  gamma, beta = rng.normal(1, 0.3, shape[-1:]), rng.normal(0, 0.3, shape[-1:])
  for layer in (ours, keras_ln):
    layer.gamma.assign(gamma.astype(np.float32))
    layer.beta.assign(beta.astype(np.float32))
  x = tf.constant(rng.normal(0.5, 2.0, shape).astype(np.float32))
  dy = tf.constant(rng.normal(0, 1.0, shape).astype(np.float32))
  results = []
  for layer in (ours, keras_ln):
    with tf.GradientTape() as tape:
      tape.watch(x)
      out = layer(x, training=True)
      loss = tf.reduce_sum(out * dy)
    results.append((out, *tape.gradient(loss, [x, layer.gamma, layer.beta])))
  np.testing.assert_array_equal(results[0][0], results[1][0])
  np.testing.assert_array_equal(ours(x, training=False), results[1][0])
  for got, want in zip(results[0][1:], results[1][1:]):
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("policy,atol", [("float32", 1e-5), ("mixed_bfloat16", 0.1)])
def test_training_path_without_dropout_computes_the_inference_function(policy, atol):
  """With dropout off, training=True (fused kernels) gives the inference outputs and loss."""
  keras.mixed_precision.set_global_policy(policy)
  keras.utils.set_random_seed(2)
  config = ModelConfig(**TINY, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
  encoder = modeling.BertEncoder(config)
  f = _features()
  train = encoder(f, training=True)["sequence_output"]
  infer = encoder(f, training=False)["sequence_output"]
  np.testing.assert_allclose(tf.cast(train, tf.float32), tf.cast(infer, tf.float32), atol=atol)
  # And training does train: the gradient reaches every encoder weight.
  with tf.GradientTape() as tape:
    loss = tf.reduce_sum(tf.cast(encoder(f, training=True)["pooled_output"], tf.float32))
  grads = tape.gradient(loss, encoder.trainable_variables)
  assert all(g is not None for g in grads)
