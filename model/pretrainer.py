"""BERT's pre-training heads over the shared encoder: masked LM and next-sentence (or order).

google-research/bert's run_pretraining.py, as Keras layers with its variable
names (what Google's checkpoints hold under cls/, and what Hugging Face's
BertForPreTraining calls cls.predictions / cls.seq_relationship):

  masked LM   gather the masked positions of the last layer -> dense (hidden_act)
              -> LayerNorm -> logits against the word embedding table (tied: the
              decoder is the input embeddings, transposed) + an output bias
              cls/predictions/transform/dense, cls/predictions/transform/LayerNorm,
              cls/predictions/output_bias
  NSP / SOP   the pooled [CLS] output -> 2 logits
              cls/seq_relationship/output_weights [2, hidden], .../output_bias [2]

For ALBERT the transform maps to the embedding width (128), as the decoder is
the factorised embedding table (google-research/albert's get_masked_lm_output).
The losses are run_pretraining's: the masked LM's is the mean over the real
masked positions (masked_lm_weights), the pair task's the mean over examples.
"""

from __future__ import annotations

from typing import Dict, Optional

import keras
import tensorflow as tf

from bertline import schema
from bertline.model import modeling
from bertline.model.model_config import ModelConfig

PREFIX = "cls/"
MLM_DENSE_KERNEL = "cls/predictions/transform/dense/kernel"
MLM_DENSE_BIAS = "cls/predictions/transform/dense/bias"
MLM_NORM_GAMMA = "cls/predictions/transform/LayerNorm/gamma"
MLM_NORM_BETA = "cls/predictions/transform/LayerNorm/beta"
MLM_OUTPUT_BIAS = "cls/predictions/output_bias"
PAIR_WEIGHTS = "cls/seq_relationship/output_weights"
PAIR_BIAS = "cls/seq_relationship/output_bias"
INPUTS = (*schema.SEQUENCE_FEATURES, schema.MASKED_LM_POSITIONS)


class MaskedLMHead(keras.layers.Layer):
  """Logits over the vocabulary at the masked positions.

  Call args:
    sequence_output: [batch, seq, hidden] (the encoder's last layer).
    positions: int32 [batch, predictions] (masked_lm_positions; padding 0).
  Returns:
    float32 [batch, predictions, vocab_size].
  """

  def __init__(self, config: ModelConfig, word_embeddings: keras.layers.Embedding, **kwargs):
    super().__init__(**kwargs)
    self.config = config
    # The decoder is the encoder's embedding table: held by a function, so that Keras does
    # not track the table a second time as this layer's own weight.
    self._table = lambda: word_embeddings.embeddings
    self.dense = keras.layers.Dense(
        config.word_embedding_width, activation=modeling.get_activation(config.hidden_act),
        kernel_initializer=keras.initializers.TruncatedNormal(stddev=config.initializer_range),
        name="dense")
    self.layer_norm = modeling.LayerNormalization(axis=-1, epsilon=config.layer_norm_eps,
                                                  dtype="float32", name="LayerNorm")

  def build(self, input_shape=None):
    self.dense.build((None, self.config.hidden_size))
    self.layer_norm.build((None, self.config.word_embedding_width))
    self.output_bias = self.add_weight(shape=(self.config.vocab_size,), initializer="zeros",
                                       dtype="float32", name="output_bias")
    self.built = True

  def call(self, sequence_output, positions):
    picked = tf.gather(sequence_output, tf.cast(positions, tf.int32), batch_dims=1)
    x = self.layer_norm(self.dense(picked))
    logits = tf.einsum("bpe,ve->bpv", tf.cast(x, tf.float32), tf.cast(self._table(), tf.float32))
    return logits + self.output_bias

  def compute_output_spec(self, sequence_output, positions):
    return keras.KerasTensor((positions.shape[0], positions.shape[1], self.config.vocab_size),
                             dtype="float32")


class PairHead(keras.layers.Layer):
  """Two logits from the pooled [CLS] output: NSP (is B random?) or SOP (are A, B swapped?)."""

  def __init__(self, config: ModelConfig, **kwargs):
    super().__init__(**kwargs)
    self.config = config

  def build(self, input_shape=None):
    init = keras.initializers.TruncatedNormal(stddev=self.config.initializer_range)
    self.output_weights = self.add_weight(shape=(2, self.config.hidden_size), initializer=init,
                                          dtype="float32", name="output_weights")
    self.output_bias = self.add_weight(shape=(2,), initializer="zeros", dtype="float32",
                                       name="output_bias")
    self.built = True

  def call(self, pooled):
    return tf.matmul(tf.cast(pooled, tf.float32), self.output_weights,
                     transpose_b=True) + self.output_bias

  def compute_output_spec(self, pooled):
    return keras.KerasTensor((pooled.shape[0], 2), dtype="float32")


@keras.saving.register_keras_serializable(package="bertline")
class BertPretrainer(keras.Model):
  """run_pretraining's model: the encoder with the masked-LM head (and the pair head).

  Args:
    config: ModelConfig. The encoder's hyper-parameters.
    pairs: bool. Whether the data carries a sentence-pair task (NSP or SOP).
    encoder: BertEncoder or None. An encoder to reuse (a new one by default).

  Inputs: dict of int32 `input_ids`, `input_mask`, `segment_ids` [batch, seq]
  and `masked_lm_positions` [batch, predictions].
  Outputs: dict `mlm_logits` [batch, predictions, vocab] and, with pairs,
  `pair_logits` [batch, 2]; float32 whatever the precision policy.
  """

  def __init__(self, config: ModelConfig, pairs: bool, encoder=None,
               name: str = "bert_pretrainer", **kwargs):
    encoder = encoder if encoder is not None else modeling.BertEncoder(config)
    # Without a pair task nothing reads the pooled output: its dense layer is frozen rather
    # than left without gradients (or decayed towards zero by the optimizer), so that
    # fine-tuning starts from the checkpoint's pooler.
    encoder.pooler.trainable = bool(pairs)
    mlm = MaskedLMHead(config, encoder.embeddings.word_embeddings, name="predictions")
    pair = PairHead(config, name="seq_relationship") if pairs else None

    inputs = {name: keras.Input(shape=(None,), dtype="int32", name=name) for name in INPUTS}
    encoded = encoder({k: inputs[k] for k in schema.SEQUENCE_FEATURES})
    outputs = {"mlm_logits": mlm(encoded["sequence_output"], inputs[schema.MASKED_LM_POSITIONS])}
    if pair is not None:
      outputs["pair_logits"] = pair(encoded["pooled_output"])
    super().__init__(inputs=inputs, outputs=outputs, name=name, **kwargs)

    self.config = config
    self.pairs = pairs
    self.encoder = encoder
    self.mlm = mlm
    self.pair = pair

  def call(self, inputs, training=None, mask=None):
    return super().call({k: tf.cast(inputs[k], tf.int32) for k in INPUTS}, training=training,
                        mask=mask)

  def get_config(self):
    return {"config": self.config.to_dict(), "pairs": self.pairs, "name": self.name}

  @classmethod
  def from_config(cls, config, custom_objects=None):
    return cls(ModelConfig.from_dict(config["config"]), config["pairs"],
               name=config.get("name", "bert_pretrainer"))

  def weight_map(self) -> Dict[str, tf.Variable]:
    """Google TF1 checkpoint name -> variable: the encoder's, and the heads' under cls/."""
    m = self.encoder.weight_map()
    m[MLM_DENSE_KERNEL] = modeling._variable(self.mlm.dense.kernel)  # pylint: disable=protected-access
    m[MLM_DENSE_BIAS] = modeling._variable(self.mlm.dense.bias)  # pylint: disable=protected-access
    m[MLM_NORM_GAMMA] = modeling._variable(self.mlm.layer_norm.gamma)  # pylint: disable=protected-access
    m[MLM_NORM_BETA] = modeling._variable(self.mlm.layer_norm.beta)  # pylint: disable=protected-access
    m[MLM_OUTPUT_BIAS] = modeling._variable(self.mlm.output_bias)  # pylint: disable=protected-access
    if self.pair is not None:
      m[PAIR_WEIGHTS] = modeling._variable(self.pair.output_weights)  # pylint: disable=protected-access
      m[PAIR_BIAS] = modeling._variable(self.pair.output_bias)  # pylint: disable=protected-access
    return m


def masked_lm_loss(logits: tf.Tensor, ids: tf.Tensor, weights: tf.Tensor,
                   normalizer: Optional[tf.Tensor] = None) -> tf.Tensor:
  """Per-example sums of the masked positions' cross-entropy, over `normalizer` masks.

  Args:
    logits: float32 [batch, predictions, vocab].
    ids: int [batch, predictions]. masked_lm_ids (the original tokens).
    weights: float [batch, predictions]. masked_lm_weights (1 real, 0 padding).
    normalizer: scalar. What the sums are divided by; run_pretraining's
      sum(weights) + 1e-5 of the batch by default.
  Returns:
    float32 [batch]: summed over the batch, run_pretraining's masked_lm_loss.
  """
  weights = tf.cast(weights, tf.float32)
  losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=tf.cast(ids, tf.int32),
                                                          logits=logits)
  if normalizer is None:
    normalizer = tf.reduce_sum(weights) + 1e-5
  return tf.reduce_sum(losses * weights, axis=-1) / normalizer


def pair_loss(logits: tf.Tensor, labels: tf.Tensor) -> tf.Tensor:
  """Per-example cross-entropy of the NSP/SOP logits: [batch]."""
  return modeling.per_example_loss(labels, logits)
