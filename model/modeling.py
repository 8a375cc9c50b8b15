"""BERT and ALBERT encoders and the run_classifier classifier, in Keras 3.

The network is google-research/bert's modeling.py (and ALBERT's, which differs
only in factorised embeddings and cross-layer sharing), built from the same
ModelConfig:

  input_ids, segment_ids -> Embeddings (word + position + token type,
  LayerNorm, dropout[, ALBERT projection]) -> num_hidden_layers x
  TransformerLayer (self-attention with the padding mask, add & LayerNorm,
  feed-forward, add & LayerNorm) -> sequence_output; pooler: dense + tanh on
  the [CLS] position -> pooled_output.

Every weight has a canonical name: the one Google's TF1 checkpoints use
(`bert/encoder/layer_3/attention/self/query/kernel`, or ALBERT's
`bert/encoder/transformer/group_0/inner_group_0/...`). `weight_map()` returns
them; checkpoints.py translates every other format to these names.

Mixed precision: build under `keras.mixed_precision.set_global_policy(
"mixed_float16" or "mixed_bfloat16")`. LayerNorm and the attention softmax run
in float32 (their layers are float32 / they cast), and so do the classifier's
logits and probabilities.
"""

from __future__ import annotations

import math
from typing import Callable, Dict, Optional

import keras
import tensorflow as tf

from bertline import schema
from bertline.model import fused
from bertline.model.model_config import ModelConfig

_SQRT_2 = math.sqrt(2.0)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


def gelu(x: tf.Tensor) -> tf.Tensor:
  """BERT's GELU, the exact erf form (Hugging Face's "gelu").

  The released BERT checkpoints were trained with the erf form; later
  google-research/bert code (bert-tensorflow 1.0.4) and ALBERT compute
  "gelu" with the tanh approximation, which is `gelu_tanh` here ("gelu_new").
  The two differ by at most ~1e-3 per activation.
  """
  return 0.5 * x * (1.0 + tf.math.erf(x / tf.cast(_SQRT_2, x.dtype)))


def gelu_tanh(x: tf.Tensor) -> tf.Tensor:
  """The tanh approximation of GELU (HF's "gelu_new" / "gelu_pytorch_tanh")."""
  c = tf.cast(_SQRT_2_OVER_PI, x.dtype)
  return 0.5 * x * (1.0 + tf.tanh(c * (x + tf.cast(0.044715, x.dtype) * x * x * x)))


def get_activation(name: str) -> Callable[[tf.Tensor], tf.Tensor]:
  """The feed-forward activation named by ModelConfig.hidden_act."""
  table = {
      "gelu": gelu,
      "gelu_new": gelu_tanh,
      "gelu_pytorch_tanh": gelu_tanh,
      "gelu_fast": gelu_tanh,
      "relu": tf.nn.relu,
      "tanh": tf.tanh,
      "swish": tf.nn.silu,
      "silu": tf.nn.silu,
  }
  if name not in table:
    raise ValueError(f"Unknown hidden_act {name!r}; use one of {sorted(table)}.")
  return table[name]


def _initializer(stddev: float) -> keras.initializers.Initializer:
  return keras.initializers.TruncatedNormal(stddev=stddev)


# Dropout keeps an element when its 16 random bits, read as an int16, are at
# least this far above int16's minimum per unit of rate (65536 draws).
_DROPOUT_DRAWS = 65536


def dropout_16bit(x: tf.Tensor, rate: float, seed: tf.Tensor) -> tf.Tensor:
  """Inverted dropout from 16 random bits per element (Philox, stateless).

  `tf.nn.experimental.stateless_dropout` draws a float32 per element, and on
  CPU TensorFlow's Philox costs about 2.7 ns per 32-bit draw: at BERT's 0.1
  dropout on the attention probabilities it was a third of a MiniLM forward
  pass. Two elements share one int32 draw here (bitcast to two int16s), so
  the generator does half the work. An element is dropped with probability
  round(rate * 65536) / 65536 (0.1 -> 0.100006) and the survivors are scaled
  by the exact inverse of the keep probability, so the expectation is kept.

  Args:
    x: float Tensor of any shape.
    rate: float in (0, 1). Probability of dropping an element.
    seed: int32 Tensor [2]. A stateless seed; the same seed gives the same mask.
  Returns:
    x's shape and dtype.
  """
  dropped = _dropped_draws(rate)
  if dropped <= 0:
    return x
  if dropped >= _DROPOUT_DRAWS:
    return tf.zeros_like(x)
  threshold, scale = _dropout_threshold_and_scale(dropped)
  keep = _dropout_draws(x, seed) >= tf.constant(threshold, tf.int16)
  return tf.where(keep, x * tf.cast(scale, x.dtype), tf.zeros_like(x))


def _dropped_draws(rate: float) -> int:
  """How many of the 65536 int16 draws drop an element at `rate`."""
  return int(round(rate * _DROPOUT_DRAWS))


def _dropout_threshold_and_scale(dropped: int):
  """The keep rule when 0 < dropped < 65536: draw >= threshold, survivors times scale."""
  return dropped - _DROPOUT_DRAWS // 2, _DROPOUT_DRAWS / (_DROPOUT_DRAWS - dropped)


def _dropout_draws(x: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
  """dropout_16bit's int16 draws, one per element of x, in x's shape."""
  size = tf.size(x)
  bits = tf.random.stateless_uniform([(size + 1) // 2], seed=seed, minval=None, maxval=None,
                                     dtype=tf.int32)
  return tf.reshape(tf.reshape(tf.bitcast(bits, tf.int16), [-1])[:size], tf.shape(x))


class Dropout(keras.layers.Dropout):
  """keras.layers.Dropout that draws 16 random bits per element (dropout_16bit).

  Same seed generator, rate and call contract as Keras'; a noise_shape falls
  back to Keras' own dropout.
  """

  def call(self, inputs, training=False):
    if not training or self.rate <= 0 or self.noise_shape is not None:
      return super().call(inputs, training=training)
    return dropout_16bit(inputs, self.rate, self._next_seed())

  def _next_seed(self) -> tf.Tensor:
    seed = self.seed_generator.next()
    # Keras keeps the state in int64; stateless ops want int32 (as Keras does).
    return tf.cast(tf.math.floormod(seed, tf.int32.max - 1), tf.int32)

  def draws_for(self, x: tf.Tensor):
    """The (int16 draws, keep threshold, scale) this layer's next call on x would use.

    None when it would drop nothing (rate rounds to 0 of 65536); a fused
    kernel (model/fused.py) applies `draws >= threshold` and `scale` itself.
    """
    if self.noise_shape is not None:
      raise ValueError("draws_for() has no noise_shape support")
    if self.rate <= 0:
      return None
    seed = self._next_seed()  # consumed as call() consumes it, whatever follows
    dropped = _dropped_draws(self.rate)
    if dropped <= 0:
      return None
    if dropped >= _DROPOUT_DRAWS:
      raise ValueError(f"dropout rate {self.rate} rounds to dropping everything")
    threshold, scale = _dropout_threshold_and_scale(dropped)
    return _dropout_draws(x, seed), threshold, scale


class LayerNormalization(keras.layers.LayerNormalization):
  """keras.layers.LayerNormalization (last axis) with a closed-form gradient.

  Inference runs Keras' own call. Training computes the same forward ops as
  Keras (so the same numbers) and its backward pass from the textbook
  formula, dx = rstd * (g - mean(g) - xhat * mean(g * xhat)) with g = dy *
  gamma, in five elementwise passes: differentiating Keras' ops (moments,
  tiles, broadcasts) took about a tenth of a fine-tuning step on CPU.
  """

  def call(self, inputs, training=None):
    if not training or self.rms_scaling or not self.center or not self.scale or \
        self.axis not in (-1, [-1], len(inputs.shape) - 1, [len(inputs.shape) - 1]):
      return super().call(inputs)
    x = tf.cast(inputs, tf.float32)
    out = _layer_norm_last_axis(x, tf.cast(self.gamma, tf.float32),
                                tf.cast(self.beta, tf.float32), float(self.epsilon))
    return tf.cast(out, self.compute_dtype)


def _layer_norm_last_axis(x, gamma, beta, epsilon):
  @tf.custom_gradient
  def layer_norm(x, gamma, beta):
    # Keras' ops, in its order (ops.layer_normalization with tf.nn.moments).
    mean = tf.reduce_mean(x, axis=-1, keepdims=True)
    variance = tf.reduce_mean(tf.math.squared_difference(x, mean), axis=-1, keepdims=True)
    rstd = tf.math.rsqrt(variance + epsilon)
    inv = rstd * gamma
    res = -mean * inv
    res = res + beta
    out = x * inv + res

    def grad(dy):
      dy = tf.cast(dy, tf.float32)
      xhat = (x - mean) * rstd
      outer = list(range(len(x.shape) - 1))
      g = dy * gamma
      dx = rstd * (g - tf.reduce_mean(g, axis=-1, keepdims=True)
                   - xhat * tf.reduce_mean(g * xhat, axis=-1, keepdims=True))
      return dx, tf.reduce_sum(dy * xhat, axis=outer), tf.reduce_sum(dy, axis=outer)

    return out, grad

  return layer_norm(x, gamma, beta)


def _layer_norm(config: ModelConfig, name: str) -> LayerNormalization:
  # float32 whatever the global policy: float16 variance underflows/overflows.
  return LayerNormalization(axis=-1, epsilon=config.layer_norm_eps, dtype="float32", name=name)


def _dense(units: int, config: ModelConfig, name: str, use_bias: bool = True,
           activation=None) -> keras.layers.Dense:
  return keras.layers.Dense(units, activation=activation, use_bias=use_bias,
                            kernel_initializer=_initializer(config.initializer_range),
                            name=name)


class Embeddings(keras.layers.Layer):
  """Word + position + token-type embeddings, LayerNorm, dropout.

  ALBERT's factorised embeddings: the tables are embedding_size wide and a dense
  layer maps them to hidden_size after the LayerNorm ("after_layer_norm",
  Google's ALBERT), or only the word embedding is projected before the sum
  ("word_projection", brightmart's albert_zh).

  Call args:
    input_ids: int32 Tensor [batch, seq].
    segment_ids: int32 Tensor [batch, seq].
  Returns:
    [batch, seq, hidden_size] in the compute dtype.
  """

  def __init__(self, config: ModelConfig, **kwargs):
    super().__init__(**kwargs)
    self.config = config
    self.word_embeddings = keras.layers.Embedding(
        config.vocab_size, config.word_embedding_width,
        embeddings_initializer=_initializer(config.initializer_range), name="word_embeddings")
    self.position_embeddings = keras.layers.Embedding(
        config.max_position_embeddings, config.embedding_width,
        embeddings_initializer=_initializer(config.initializer_range),
        name="position_embeddings")
    self.token_type_embeddings = keras.layers.Embedding(
        config.type_vocab_size, config.embedding_width,
        embeddings_initializer=_initializer(config.initializer_range),
        name="token_type_embeddings")
    self.layer_norm = _layer_norm(config, "LayerNorm")
    self.dropout = Dropout(config.hidden_dropout_prob)
    self.word_projection = None
    self.hidden_mapping = None
    if config.has_embedding_projection:
      if config.embedding_projection == "word_projection":
        self.word_projection = _dense(config.hidden_size, config, "word_embeddings_2",
                                      use_bias=False)
      else:
        self.hidden_mapping = _dense(config.hidden_size, config, "embedding_hidden_mapping_in")

  def build(self, input_shape=None):
    c = self.config
    self.word_embeddings.build((None, None))
    self.position_embeddings.build((None,))
    self.token_type_embeddings.build((None, None))
    self.layer_norm.build((None, None, c.embedding_width))
    if self.word_projection is not None:
      self.word_projection.build((None, None, c.word_embedding_width))
    if self.hidden_mapping is not None:
      self.hidden_mapping.build((None, None, c.embedding_width))
    self.built = True

  def call(self, input_ids, segment_ids, training=None):
    seq_length = tf.shape(input_ids)[1]
    words = self.word_embeddings(input_ids)
    if self.word_projection is not None:
      words = self.word_projection(words)
    positions = self.position_embeddings(tf.range(seq_length))
    x = words + positions[tf.newaxis] + self.token_type_embeddings(segment_ids)
    x = self.layer_norm(x)
    x = tf.cast(x, self.compute_dtype)
    x = self.dropout(x, training=training)
    if self.hidden_mapping is not None:
      x = self.hidden_mapping(x)
    return x

  def compute_output_spec(self, input_ids, segment_ids, training=None):
    return keras.KerasTensor(tuple(input_ids.shape) + (self.config.hidden_size,),
                             dtype=self.compute_dtype)

  def weight_map(self, prefix: str = "bert/") -> Dict[str, tf.Variable]:
    m = {
        f"{prefix}embeddings/word_embeddings": self.word_embeddings.embeddings,
        f"{prefix}embeddings/position_embeddings": self.position_embeddings.embeddings,
        f"{prefix}embeddings/token_type_embeddings": self.token_type_embeddings.embeddings,
        f"{prefix}embeddings/LayerNorm/gamma": self.layer_norm.gamma,
        f"{prefix}embeddings/LayerNorm/beta": self.layer_norm.beta,
    }
    if self.word_projection is not None:
      m[f"{prefix}embeddings/word_embeddings_2"] = self.word_projection.kernel
    if self.hidden_mapping is not None:
      m[f"{prefix}encoder/embedding_hidden_mapping_in/kernel"] = self.hidden_mapping.kernel
      m[f"{prefix}encoder/embedding_hidden_mapping_in/bias"] = self.hidden_mapping.bias
    return {k: _variable(v) for k, v in m.items()}


def _variable(v) -> tf.Variable:
  """The tf.Variable behind a Keras 3 variable (checkpoint readers assign to it)."""
  return getattr(v, "value", v) if not isinstance(v, tf.Variable) else v


class TransformerLayer(keras.layers.Layer):
  """One post-LayerNorm transformer block of BERT.

  Call args:
    x: [batch, seq, hidden] in the compute dtype.
    input_mask: int32 [batch, seq]; 1 for real tokens, 0 for padding.
  Returns:
    [batch, seq, hidden] in the compute dtype.
  """

  # Our sub-layer -> the names inside one BERT layer / one ALBERT inner group.
  BERT_NAMES = {
      "query": "attention/self/query", "key": "attention/self/key",
      "value": "attention/self/value", "attention_output": "attention/output/dense",
      "attention_layer_norm": "attention/output/LayerNorm",
      "intermediate": "intermediate/dense", "output": "output/dense",
      "output_layer_norm": "output/LayerNorm",
  }
  ALBERT_NAMES = {
      "query": "attention_1/self/query", "key": "attention_1/self/key",
      "value": "attention_1/self/value", "attention_output": "attention_1/output/dense",
      "attention_layer_norm": "LayerNorm",
      "intermediate": "ffn_1/intermediate/dense", "output": "ffn_1/intermediate/output/dense",
      "output_layer_norm": "LayerNorm_1",
  }

  def __init__(self, config: ModelConfig, **kwargs):
    super().__init__(**kwargs)
    self.config = config
    h = config.hidden_size
    self.num_heads = config.num_attention_heads
    self.head_size = config.head_size
    self.query = _dense(h, config, "query")
    self.key = _dense(h, config, "key")
    self.value = _dense(h, config, "value")
    self.attention_output = _dense(h, config, "attention_output")
    self.attention_layer_norm = _layer_norm(config, "attention_layer_norm")
    self.intermediate = _dense(config.intermediate_size, config, "intermediate")
    self.output_dense = _dense(h, config, "output")
    self.output_layer_norm = _layer_norm(config, "output_layer_norm")
    self.attention_dropout = Dropout(config.attention_probs_dropout_prob)
    self.hidden_dropout = Dropout(config.hidden_dropout_prob)
    self.activation = get_activation(config.hidden_act)
    # Training runs model/fused.py's kernels; False runs the plain ops (the
    # reference the fused kernels are tested against).
    self.fused_training = True

  def build(self, input_shape=None):
    h, i = self.config.hidden_size, self.config.intermediate_size
    for layer in (self.query, self.key, self.value, self.attention_output, self.intermediate):
      layer.build((None, None, h))
    self.output_dense.build((None, None, i))
    self.attention_layer_norm.build((None, None, h))
    self.output_layer_norm.build((None, None, h))
    self.built = True

  def _split_heads(self, x, batch, seq):
    return tf.reshape(x, [batch, seq, self.num_heads, self.head_size])

  def call(self, x, input_mask, training=None):
    shape = tf.shape(x)
    batch, seq = shape[0], shape[1]
    q = self._split_heads(self.query(x), batch, seq)
    k = self._split_heads(self.key(x), batch, seq)
    v = self._split_heads(self.value(x), batch, seq)
    scores = tf.einsum("bqnd,bknd->bnqk", q, k)
    # Softmax in float32: float16 exp overflows; padding gets -10000 as in BERT,
    # which underflows to exactly 0 probability.
    # reshape, not [:, None, None, :]: TFLite has no strided slice with new axes.
    mask = tf.reshape(tf.cast(input_mask, tf.float32), [batch, 1, 1, seq])
    padding = (1.0 - mask) * -10000.0
    scale = 1.0 / math.sqrt(self.head_size)
    fuse = bool(training) and self.fused_training
    if fuse:
      probs = fused.attention_probs(scores, padding, scale,
                                    self.attention_dropout.draws_for(scores))
    else:
      scores = tf.cast(scores, tf.float32) * scale
      scores += padding
      probs = tf.nn.softmax(scores, axis=-1)
      probs = self.attention_dropout(probs, training=training)
      probs = tf.cast(probs, self.compute_dtype)
    context = tf.einsum("bnqk,bknd->bqnd", probs, v)
    context = tf.reshape(context, [batch, seq, self.config.hidden_size])
    if fuse:
      return self._fused_output_sublayers(context, x)
    attention = self.hidden_dropout(self.attention_output(context), training=training)
    attention = self.attention_layer_norm(attention + x)
    attention = tf.cast(attention, self.compute_dtype)
    inner = self.activation(self.intermediate(attention))
    out = self.hidden_dropout(self.output_dense(inner), training=training)
    out = self.output_layer_norm(out + attention)
    return tf.cast(out, self.compute_dtype)

  def _fused_output_sublayers(self, context, x):
    """Training's attention output, feed-forward and their LayerNorms (model/fused.py).

    The same function as the unfused ops below it in call(): each dense
    layer's matmul on oneDNN, and its bias, activation, dropout, residual and
    LayerNorm in one fused kernel each way. Dropout draws are taken in the
    unfused order (attention output, then feed-forward output).
    """
    width, dtype = self.config.hidden_size, self.compute_dtype

    def matmul(inputs, dense):
      return tf.matmul(inputs, tf.cast(dense.kernel, dtype))

    def sublayer(h, dense, residual, norm):
      return fused.residual_layer_norm(h, dense.bias, residual, norm.gamma, norm.beta,
                                       norm.epsilon, self.hidden_dropout.draws_for(h))

    rows = tf.reshape(x, [-1, width])
    attention = sublayer(matmul(tf.reshape(context, [-1, width]), self.attention_output),
                         self.attention_output, rows, self.attention_layer_norm)
    inner = matmul(attention, self.intermediate)
    if self.activation is gelu:
      inner = fused.bias_gelu(inner, self.intermediate.bias)
    else:
      inner = self.activation(inner + tf.cast(self.intermediate.bias, dtype))
    out = sublayer(matmul(inner, self.output_dense), self.output_dense, attention,
                   self.output_layer_norm)
    return tf.reshape(out, tf.shape(x))

  def compute_output_spec(self, x, input_mask, training=None):
    return keras.KerasTensor(x.shape, dtype=self.compute_dtype)

  def weight_map(self, prefix: str, albert_names: bool = False) -> Dict[str, tf.Variable]:
    names = self.ALBERT_NAMES if albert_names else self.BERT_NAMES
    m = {}
    for attr, name in names.items():
      layer = getattr(self, "output_dense" if attr == "output" else attr)
      if isinstance(layer, keras.layers.LayerNormalization):
        m[f"{prefix}{name}/gamma"] = layer.gamma
        m[f"{prefix}{name}/beta"] = layer.beta
      else:
        m[f"{prefix}{name}/kernel"] = layer.kernel
        m[f"{prefix}{name}/bias"] = layer.bias
    return {k: _variable(v) for k, v in m.items()}


class Pooler(keras.layers.Layer):
  """Dense + tanh on the first ([CLS]) position: [b, s, h] -> [b, h]."""

  def __init__(self, config: ModelConfig, **kwargs):
    super().__init__(**kwargs)
    self.config = config
    self.dense = _dense(config.hidden_size, config, "dense", activation="tanh")

  def build(self, input_shape=None):
    self.dense.build((None, self.config.hidden_size))
    self.built = True

  def call(self, sequence_output):
    return self.dense(sequence_output[:, 0, :])

  def compute_output_spec(self, sequence_output):
    return keras.KerasTensor((sequence_output.shape[0], self.config.hidden_size),
                             dtype=self.compute_dtype)


def _sequence_inputs() -> Dict[str, keras.KerasTensor]:
  return {name: keras.Input(shape=(None,), dtype="int32", name=name)
          for name in schema.SEQUENCE_FEATURES}


# Registered so that a saved `.keras` model loads without custom_objects.
@keras.saving.register_keras_serializable(package="bertline")
class BertEncoder(keras.Model):
  """BERT / ALBERT encoder (google-research/bert's BertModel) as a Keras model.

  Args:
    config: ModelConfig. The network's hyper-parameters.

  Inputs: dict of int32 [batch, seq] tensors `input_ids`, `input_mask`,
  `segment_ids` (schema.SEQUENCE_FEATURES); int64 is accepted and cast.
  Outputs: dict
    sequence_output: [batch, seq, hidden] (the last layer),
    pooled_output: [batch, hidden] (dense + tanh on [CLS]),
    encoder_outputs: list of num_hidden_layers [batch, seq, hidden] tensors
      (ALBERT with inner_group_num > 1: one per layer application, after all
      the inner layers of its group),
  in the policy's compute dtype (float32 by default).

  Example:
    >>> config = ModelConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2,
    ...                      num_attention_heads=4, intermediate_size=64)
    >>> encoder = BertEncoder(config)
    >>> out = encoder({"input_ids": ids, "input_mask": mask, "segment_ids": seg})
    >>> out["pooled_output"].shape   # (batch, 32)
  """

  def __init__(self, config: ModelConfig, name: str = "bert_encoder", **kwargs):
    # --- layers
    embeddings = Embeddings(config, name="embeddings")
    if config.is_albert:
      groups = [[TransformerLayer(config, name=f"group_{g}_inner_{j}")
                 for j in range(config.inner_group_num)]
                for g in range(config.num_hidden_groups)]
      applied = [groups[config.group_of_layer(i)] for i in range(config.num_hidden_layers)]
    else:
      groups = [[TransformerLayer(config, name=f"layer_{i}")]
                for i in range(config.num_hidden_layers)]
      applied = groups
    pooler = Pooler(config, name="pooler")

    # --- functional model
    inputs = _sequence_inputs()
    ids = inputs[schema.INPUT_IDS]
    mask = inputs[schema.INPUT_MASK]
    x = embeddings(ids, inputs[schema.SEGMENT_IDS])
    encoder_outputs = []
    for group in applied:
      for layer in group:
        x = layer(x, mask)
      encoder_outputs.append(x)
    outputs = {
        "sequence_output": x,
        "pooled_output": pooler(x),
        "encoder_outputs": encoder_outputs,
    }
    super().__init__(inputs=inputs, outputs=outputs, name=name, **kwargs)

    # --- config
    self.config = config
    self.embeddings = embeddings
    self.groups = groups
    self.pooler = pooler

  def call(self, inputs, training=None, mask=None):
    return super().call(_cast_inputs(inputs), training=training, mask=mask)

  def get_config(self):
    return {"config": self.config.to_dict(), "name": self.name}

  @classmethod
  def from_config(cls, config, custom_objects=None):
    return cls(ModelConfig.from_dict(config["config"]), name=config.get("name", "bert_encoder"))

  def weight_map(self) -> Dict[str, tf.Variable]:
    """Google TF1 checkpoint name -> variable, for every weight of the encoder."""
    m = dict(self.embeddings.weight_map("bert/"))
    if self.config.is_albert:
      for g, group in enumerate(self.groups):
        for j, layer in enumerate(group):
          m.update(layer.weight_map(f"bert/encoder/transformer/group_{g}/inner_group_{j}/",
                                    albert_names=True))
    else:
      for i, (layer,) in enumerate(self.groups):
        m.update(layer.weight_map(f"bert/encoder/layer_{i}/"))
    m["bert/pooler/dense/kernel"] = _variable(self.pooler.dense.kernel)
    m["bert/pooler/dense/bias"] = _variable(self.pooler.dense.bias)
    return m


def _cast_inputs(inputs):
  if isinstance(inputs, dict):
    return {k: tf.cast(v, tf.int32) if k in schema.SEQUENCE_FEATURES else v
            for k, v in inputs.items() if k in schema.SEQUENCE_FEATURES}
  return inputs


# Names of the classifier head's weights (run_classifier's output_weights is
# the transposed kernel; checkpoints.py converts).
HEAD_KERNEL = "classifier/kernel"
HEAD_BIAS = "classifier/bias"


@keras.saving.register_keras_serializable(package="bertline")
class BertClassifier(keras.Model):
  """run_classifier's create_model: encoder, dropout on pooled output, dense, softmax.

  Args:
    config: ModelConfig. The encoder's hyper-parameters.
    num_labels: int. Number of classes.
    dropout_rate: float. Dropout on the pooled output while training (BERT's 0.1).
    encoder: BertEncoder or None. An encoder to reuse (a new one by default).

  Inputs: the encoder's dict (extra keys such as label_ids are ignored).
  Outputs: dict `logits` [batch, num_labels] and `probabilities` [batch,
  num_labels], both float32 whatever the precision policy.
  """

  def __init__(self, config: ModelConfig, num_labels: int, dropout_rate: float = 0.1,
               encoder: Optional[BertEncoder] = None, name: str = "bert_classifier", **kwargs):
    if isinstance(num_labels, bool) or not isinstance(num_labels, int) or num_labels < 1:
      raise ValueError(f"num_labels must be a positive integer, got {num_labels!r}.")
    if not 0.0 <= dropout_rate < 1.0:
      raise ValueError(f"dropout_rate must be in [0, 1), got {dropout_rate!r}.")
    encoder = encoder if encoder is not None else BertEncoder(config)
    dropout = Dropout(dropout_rate, name="dropout")
    # float32 head: logits and probabilities leave the model in float32.
    head = keras.layers.Dense(num_labels, kernel_initializer=_initializer(0.02),
                              dtype="float32", name="classifier")

    inputs = _sequence_inputs()
    pooled = encoder(inputs)["pooled_output"]
    logits = head(dropout(pooled))
    probabilities = keras.layers.Softmax(dtype="float32", name="probabilities")(logits)
    super().__init__(inputs=inputs, outputs={"logits": logits, "probabilities": probabilities},
                     name=name, **kwargs)

    self.config = config
    self.num_labels = num_labels
    self.dropout_rate = dropout_rate
    self.encoder = encoder
    self.head = head

  def call(self, inputs, training=None, mask=None):
    return super().call(_cast_inputs(inputs), training=training, mask=mask)

  def get_config(self):
    return {"config": self.config.to_dict(), "num_labels": self.num_labels,
            "dropout_rate": self.dropout_rate, "name": self.name}

  @classmethod
  def from_config(cls, config, custom_objects=None):
    return cls(ModelConfig.from_dict(config["config"]), config["num_labels"],
               config.get("dropout_rate", 0.1), name=config.get("name", "bert_classifier"))

  def weight_map(self) -> Dict[str, tf.Variable]:
    m = self.encoder.weight_map()
    m[HEAD_KERNEL] = _variable(self.head.kernel)
    m[HEAD_BIAS] = _variable(self.head.bias)
    return m


def per_example_sigmoid_loss(label_ids: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
  """A multi-label example's loss: binary cross-entropy of each label's sigmoid, averaged over
  the labels (transformers' BCEWithLogitsLoss of problem_type "multi_label_classification",
  whose mean over the batch is the loop's sum divided by the batch size).

  Args:
    label_ids: int Tensor [batch, num_labels], multi-hot.
    logits: float Tensor [batch, num_labels].
  Returns:
    float32 [batch].
  """
  return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(
      labels=tf.cast(label_ids, tf.float32), logits=tf.cast(logits, tf.float32)), axis=-1)


def per_example_loss(label_ids: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
  """Softmax cross-entropy of each example, as run_classifier computes it.

  Args:
    label_ids: int Tensor [batch] or [batch, 1].
    logits: float Tensor [batch, num_labels].
  Returns:
    float32 [batch].
  """
  labels = tf.reshape(tf.cast(label_ids, tf.int32), [-1])
  return tf.nn.sparse_softmax_cross_entropy_with_logits(
      labels=labels, logits=tf.cast(logits, tf.float32))


def default_jit_compile() -> bool:
  """Whether to XLA-compile the model's step functions by default.

  On GPUs and TPUs XLA fuses the many small ops of attention and LayerNorm
  and is always faster; on CPU it is measured by benchmarks/inference.py
  (BENCHMARKS.md) and kept where it did not lose.
  """
  if tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("TPU"):
    return True
  return CPU_JIT_COMPILE


# Set from benchmarks/inference.py's measurement on the 2-core CPU machine.
CPU_JIT_COMPILE = False


def inference_fn(model: keras.Model, jit_compile: Optional[bool] = None):
  """A compiled `features dict -> outputs dict` function (training=False)."""
  jit = default_jit_compile() if jit_compile is None else bool(jit_compile)

  @tf.function(jit_compile=jit, reduce_retracing=True)
  def run(features):
    return model(_cast_inputs(features), training=False)

  return run
