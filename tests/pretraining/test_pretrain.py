"""`bertline pretrain` end to end: real Chinese reviews, the real MiniLM's first two layers.

Static NSP data (Google's records) pre-trains with both heads and fine-tunes
with `bertline train --init-checkpoint`; dynamic data without pairs resumes to
the same weights as an uninterrupted run, bit for bit.
"""

from __future__ import annotations

import logging
import os

import numpy as np
import pytest
import tensorflow as tf

from bertline import corpora, schema
from bertline.model import checkpoints, modeling, pretrainer
from bertline.model.model_dir import ModelDir
from bertline.preprocessing import beam_job
from bertline.pretraining import data_job, pretrain
from bertline.pretraining.config import PretrainDataConfig
from bertline.trainer import train
from bertline.trainer.config import TrainConfig
from tests.pretraining.helpers import chinese_corpus

SEQ = 32


def _data(tmp_path, name, **settings):
  corpus = chinese_corpus(tmp_path / f"{name}.txt", 60)
  config = PretrainDataConfig(input=[corpus], vocab_file=_vocab(), output_dir=str(tmp_path / name),
                              max_seq_length=SEQ, max_predictions_per_seq=5,
                              held_out_fraction=0.1, **settings)
  data_job.run(config)
  return config.output_dir


def _vocab():
  from bertline import resources
  return f"{resources.minilm_dir()}/vocab.txt"


def _pretrain(data, model_dir, init, **overrides):
  values = dict(data_dir=data, model_dir=str(model_dir), init_checkpoint=init, batch_size=8,
                eval_batch_size=16, max_steps=4, eval_every_steps=2, learning_rate=1e-4,
                progress=False, seed=5, strategy="cpu")
  values.update(overrides)
  return pretrain.run(TrainConfig(**values))


def _checkpoint_weights(prefix, config, pairs):
  model = pretrainer.BertPretrainer(config, pairs=pairs)
  tf.train.Checkpoint(model=model).read(prefix).expect_partial()
  return model


def test_static_nsp_pretraining_then_fine_tuning_from_its_model_dir(tmp_path, tiny_minilm,
                                                                   caplog):
  caplog.set_level(logging.INFO)
  data = _data(tmp_path, "nsp", masking="static", pairs="nsp", dupe_factor=2)
  result = _pretrain(data, tmp_path / "pt", tiny_minilm)
  assert result.final_step == 4 and result.best_checkpoint
  metrics = result.final_metrics
  assert {"eval_masked_lm_loss", "eval_masked_lm_accuracy", "eval_pair_loss",
          "eval_pair_accuracy"} <= set(metrics)
  assert metrics["eval_loss"] == pytest.approx(metrics["eval_masked_lm_loss"]
                                               + metrics["eval_pair_loss"])
  # The MiniLM directory has no pre-training heads: Google's are created, and the log says so.
  assert any("new (cls/predictions/transform/dense/kernel" in r.getMessage()
             for r in caplog.records)
  md = ModelDir(str(tmp_path / "pt"))
  assert md.data_metadata().pairs == "nsp" and not os.path.exists(md.file(schema.LABELS_FILE))

  # Fine-tuning takes the model_dir as it is: the encoder's weights, not the heads.
  reviews = tmp_path / "reviews"
  corpora.write_chnsenticorp_tsv(str(reviews), limit_per_class=40)
  beam_job.run(beam_job.config_from_args([
      "--task", "chnsenticorp", "--data-dir", str(reviews), "--vocab-file", _vocab(),
      "--max-seq-length", str(SEQ), "--output-dir", str(tmp_path / "records"),
      "--splits", "train,dev"]))
  caplog.clear()
  tuned = train.run(TrainConfig(data_dir=str(tmp_path / "records"),
                                model_dir=str(tmp_path / "tuned"),
                                init_checkpoint=str(tmp_path / "pt"), batch_size=8,
                                max_steps=1, progress=False, strategy="cpu"))
  assert tuned.final_step == 1
  loads = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Loaded ")]
  assert loads and "unused in the file (cls/predictions/output_bias" in loads[0], loads
  files = checkpoints.resolve_pretrained(str(tmp_path / "pt"))
  pretrained = _checkpoint_weights(files.weights, files.model_config(), pairs=True)
  classifier = modeling.BertClassifier(files.model_config(), 2)
  report = checkpoints.load_pretrained(classifier, files)
  assert sorted(report.new) == [modeling.HEAD_BIAS, modeling.HEAD_KERNEL]
  ours, theirs = classifier.encoder.weight_map(), pretrained.encoder.weight_map()
  for name in ours:
    np.testing.assert_array_equal(ours[name].numpy(), theirs[name].numpy(), err_msg=name)


def test_dynamic_masking_resumes_to_the_uninterrupted_runs_weights(tmp_path, tiny_minilm):
  data = _data(tmp_path, "dyn")  # dynamic masks, no pairs: the defaults
  once = dict(eval_every_steps=4)  # one evaluation, at the end: the weights are the point
  straight = _pretrain(data, tmp_path / "straight", tiny_minilm, **once)
  _pretrain(data, tmp_path / "resumed", tiny_minilm, max_steps=2, **once)
  resumed = _pretrain(data, tmp_path / "resumed", tiny_minilm, **once)  # the same, resumed
  assert straight.final_step == resumed.final_step == 4
  config = ModelDir(str(tmp_path / "straight")).model_config()
  a = _checkpoint_weights(straight.latest_checkpoint, config, pairs=False)
  b = _checkpoint_weights(resumed.latest_checkpoint, config, pairs=False)
  for x, y in zip(a.weights, b.weights):
    np.testing.assert_array_equal(x.numpy(), y.numpy(), err_msg=x.path)
  # Without a pair task the pooler is frozen: fine-tuning starts from the checkpoint's.
  pooler = a.encoder.pooler.dense.kernel.numpy()
  start = checkpoints.resolve_pretrained(tiny_minilm)
  encoder = modeling.BertEncoder(start.model_config())
  checkpoints.load_pretrained(encoder, start)
  np.testing.assert_array_equal(pooler, encoder.pooler.dense.kernel.numpy())
  assert straight.final_metrics["eval_masked_lm_accuracy"] > 0


def test_preprocess_output_is_refused_naming_what_it_is(tmp_path, tiny_minilm):
  data = tmp_path / "cls"
  data.mkdir()
  (data / schema.METADATA_FILE).write_text('{"task": "x", "labels": ["a", "b"]}')
  with pytest.raises(ValueError, match="is not a `bertline pretrain-data` output .it is a "
                                       "preprocess output"):
    _pretrain(str(data), tmp_path / "m", tiny_minilm)
