"""`bertline pretrain`: masked-LM (plus NSP or SOP) on pretrain-data output, then fine-tune it.

google-research/bert's run_pretraining.py on `bertline train`'s own loop
(trainer/train.py with this module's kind): every strategy, mixed precision,
XLA, resuming exactly after a kill, TensorBoard, early stopping — with the
masked LM's loss and accuracy on the held-out split as the evaluation. It
starts from a Google checkpoint (with its cls/ heads), a Hugging Face
directory (BertForPreTraining's or BertForMaskedLM's heads) or a bertline
model_dir; heads the checkpoint lacks are created as Google's, and the log
says which. Its model_dir is what `bertline train --init-checkpoint` takes:
the encoder's weights carry over, the pre-training heads are left behind
(listed as unused in the fine-tuning's log).
"""

from __future__ import annotations

import logging
from typing import Any, Dict, List, Optional

import tensorflow as tf

from bertline import schema
from bertline.model import pretrainer
from bertline.preprocessing.tokenization import load_vocab
from bertline.pretraining import inputs
from bertline.trainer import train
from bertline.pretraining.config import pretrain_parser
from bertline.trainer.config import TrainConfig

log = logging.getLogger("bertline.pretrain")

build_parser = pretrain_parser


class PretrainingTask:
  """run_pretraining's objective and a held-out evaluation, for trainer/loop.py's Trainer.

  The loss of a batch is the mean cross-entropy over its masked positions
  (each example's sum times its mlm_scale: the loop's division by the batch
  size then makes it the mean over the global batch's masks), plus the pair
  task's mean cross-entropy when the data has pairs.
  """

  eval_split = schema.HELD_OUT_SPLIT

  def __init__(self, metadata: schema.PretrainingMetadata, masker: inputs.Masker):
    self.metadata = metadata
    self.masker = masker
    self.pairs = metadata.pairs != "none"

  def losses(self, model, batch) -> tf.Tensor:
    out = model(batch, training=True)
    mlm = pretrainer.masked_lm_loss(out["mlm_logits"], batch[schema.MASKED_LM_IDS],
                                    batch[schema.MASKED_LM_WEIGHTS], normalizer=1.0)
    losses = mlm * batch[inputs.MLM_SCALE]
    if self.pairs:
      losses += pretrainer.pair_loss(out["pair_logits"], batch[schema.NEXT_SENTENCE_LABELS])
    return losses

  def eval_sums(self, model, batch) -> tf.Tensor:
    """[masked-token loss, correct, masks, pair loss, pair correct, examples] summed."""
    out = model(batch, training=False)
    weights = tf.cast(batch[schema.MASKED_LM_WEIGHTS], tf.float32)
    ids = tf.cast(batch[schema.MASKED_LM_IDS], tf.int32)
    token_losses = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=ids,
                                                                  logits=out["mlm_logits"])
    correct = tf.cast(tf.equal(tf.argmax(out["mlm_logits"], -1, output_type=tf.int32), ids),
                      tf.float32)
    real = tf.cast(batch[schema.IS_REAL_EXAMPLE], tf.float32)
    sums = [tf.reduce_sum(token_losses * weights), tf.reduce_sum(correct * weights),
            tf.reduce_sum(weights)]
    if self.pairs:
      labels = tf.cast(batch[schema.NEXT_SENTENCE_LABELS], tf.int32)
      pair = pretrainer.pair_loss(out["pair_logits"], labels)
      right = tf.cast(tf.equal(tf.argmax(out["pair_logits"], -1, output_type=tf.int32), labels),
                      tf.float32)
      sums += [tf.reduce_sum(pair * real), tf.reduce_sum(right * real)]
    else:
      sums += [tf.constant(0.0), tf.constant(0.0)]
    return tf.stack(sums + [tf.reduce_sum(real)])

  def metrics(self, totals) -> Dict[str, Any]:
    loss, correct, masks, pair_loss, pair_correct, n = (float(x) for x in totals)
    out = {"eval_masked_lm_loss": loss / max(masks, 1.0),
           "eval_masked_lm_accuracy": correct / max(masks, 1.0)}
    if self.pairs:
      out.update(eval_pair_loss=pair_loss / n, eval_pair_accuracy=pair_correct / n)
    # What early stopping and best/ watch: the total loss, and the masked LM's accuracy.
    out.update(eval_loss=out["eval_masked_lm_loss"] + out.get("eval_pair_loss", 0.0),
               eval_accuracy=out["eval_masked_lm_accuracy"], eval_num_examples=int(n))
    return out

  def eval_dataset(self, config: TrainConfig, metadata, trim: bool) -> tf.data.Dataset:
    return inputs.eval_dataset(config.data_dir, metadata, self.masker, config.eval_batch_size,
                               self.eval_split)


class Pretraining:
  """`bertline pretrain`'s kind for trainer/train.py: BertPretrainer on pretrain-data output."""

  command = "pretrain"

  def __init__(self):
    self._masker: Optional[inputs.Masker] = None

  @staticmethod
  def read_metadata(data_dir: str) -> schema.PretrainingMetadata:
    return schema.read_pretraining_metadata(data_dir)

  @staticmethod
  def labels(metadata) -> List[str]:
    return []

  @staticmethod
  def build_model(config: TrainConfig, model_config, metadata: schema.PretrainingMetadata):
    return pretrainer.BertPretrainer(model_config, pairs=metadata.pairs != "none")

  def masker(self, metadata: schema.PretrainingMetadata, vocab: str) -> inputs.Masker:
    """Dynamic masking's rule, with the data's settings, over the run's vocab.txt (whose
    sha256 train checked against the data's)."""
    if self._masker is None:
      settings = metadata.settings
      self._masker = inputs.Masker(load_vocab(vocab), metadata.max_predictions_per_seq,
                                   settings["masked_lm_prob"], settings["do_whole_word_mask"])
    return self._masker

  def train_dataset(self, config: TrainConfig, metadata: schema.PretrainingMetadata,
                    static_shapes: bool, vocab: str) -> tf.data.Dataset:
    return inputs.train_dataset(config.data_dir, metadata, self.masker(metadata, vocab),
                                config.batch_size, config.seed, config.shuffle_buffer)

  def task(self, config: TrainConfig, metadata: schema.PretrainingMetadata, strategy,
           vocab: str):
    return PretrainingTask(metadata, self.masker(metadata, vocab))


def run(config: TrainConfig) -> train.TrainResult:
  """Pre-trains (or resumes) per `config`; the model_dir is fine-tuning's --init-checkpoint."""
  return train.run(config, kind=Pretraining())


def main(argv: Optional[List[str]] = None) -> int:
  return train.report(run(train.config_from_args(argv, build_parser())), "pretrain")
