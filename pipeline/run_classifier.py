"""`bertline run-classifier`: google-research/bert's run_classifier.py, run by bertline's stages.

The same command line (pipeline/run_classifier_config.py) and the same files
in --output_dir, in run_classifier's formats:

  train.tf_record, eval.tf_record, predict.tf_record   the features, one file each
      (input_ids, input_mask, segment_ids, label_ids, is_real_example; padded
      with fake examples to a whole batch on TPU, as run_classifier pads them)
  checkpoints/                                          the model after each save
  eval_results.txt   `key = value` lines: eval_accuracy, eval_loss, global_step, loss
  test_results.tsv   one line of tab-separated class probabilities per test example

Underneath, each part is a stage: `bertline preprocess` (Beam) writes the
features under output_dir/bertline_data/, `bertline train` fine-tunes with
output_dir as its model_dir (training data alone, so nothing is evaluated
mid-run, as in run_classifier), and evaluation and prediction read the last
checkpoint, as the Estimator does.
"""

from __future__ import annotations

import logging
from typing import Dict, List, Optional

import numpy as np
import tensorflow as tf

from bertline import errors, fileio, schema
from bertline.evaluator import metrics as metrics_lib
from bertline.evaluator import predict as predict_lib
from bertline.evaluator import scoring
from bertline.evaluator.config import PredictConfig
from bertline.model import model_config as model_config_lib
from bertline.model.model_dir import ModelDir
from bertline.pipeline import run_classifier_config
from bertline.pipeline.run_classifier_config import RunClassifierConfig, config_from_args
from bertline.preprocessing import beam_job
from bertline.preprocessing.config import PreprocessConfig
from bertline.preprocessing.processors import BUILTIN_TASKS
from bertline.trainer import train as train_lib
from bertline.trainer.config import TrainConfig

log = logging.getLogger(__name__)

FEATURES_DIR = "bertline_data"
# run_classifier's file of each split, and the features of its tf.Examples.
RECORD_FILES = {"train": "train.tf_record", "dev": "eval.tf_record", "test": "predict.tf_record"}
GOOGLE_FEATURES = (schema.INPUT_IDS, schema.INPUT_MASK, schema.SEGMENT_IDS, schema.LABEL_IDS,
                   schema.IS_REAL_EXAMPLE)
EVAL_RESULTS_FILE = "eval_results.txt"
# The optimizer's step counter in a bertline checkpoint: run_classifier's global_step.
_STEP_KEY = "optimizer/iterations/.ATTRIBUTES/VARIABLE_VALUE"


def check(config: RunClassifierConfig) -> str:
  """run_classifier's own checks, before any work; returns the task's bertline name."""
  if not (config.do_train or config.do_eval or config.do_predict):
    raise errors.UsageError("At least one of `do_train`, `do_eval` or `do_predict' must be True "
                            "(run_classifier's words): add --do_train=true, --do_eval=true or "
                            "--do_predict=true.")
  task = config.task_name.lower()
  if task not in BUILTIN_TASKS:
    raise ValueError(f"Task not found: {config.task_name} (--task_name); tasks: "
                     f"{', '.join(BUILTIN_TASKS)}. For another TSV layout use `bertline "
                     "preprocess --task-config` (docs/preprocess.md).")
  if not fileio.exists(config.bert_config_file):
    raise FileNotFoundError(f"--bert_config_file {config.bert_config_file} not found.")
  bert_config = model_config_lib.ModelConfig.from_json_file(config.bert_config_file)
  model_config_lib.check_sequence_length(config.max_seq_length,
                                         bert_config.max_position_embeddings,
                                         config.bert_config_file, key="--max_seq_length")
  return task


def _preprocess(config: RunClassifierConfig, task: str, splits: List[str],
                out: str) -> schema.DataMetadata:
  return beam_job.run(PreprocessConfig(
      task=task, data_dir=config.data_dir, vocab_file=config.vocab_file,
      do_lower_case=config.do_lower_case, max_seq_length=config.max_seq_length,
      output_dir=out, splits=",".join(splits), num_shards=1, overwrite=True))


def _google_example(values: Dict[str, np.ndarray]) -> bytes:
  feature = {name: tf.train.Feature(int64_list=tf.train.Int64List(value=values[name].tolist()))
             for name in GOOGLE_FEATURES}
  return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


def write_google_records(data_dir: str, metadata: schema.DataMetadata, split: str, path: str,
                         pad_to: int = 0) -> int:
  """The split's features as run_classifier writes them: one file, in input order.

  `pad_to` > 0 appends run_classifier's PaddingInputExamples (all zeros,
  is_real_example 0) up to a multiple of it, as it does on TPU. Returns the
  number of records written.
  """
  spec = schema.feature_spec(metadata.max_seq_length)
  rows = []
  for raw in tf.data.TFRecordDataset(metadata.split_files(data_dir, split),
                                     compression_type=schema.TF_COMPRESSION_TYPE[
                                         metadata.compression]):
    parsed = tf.io.parse_single_example(raw, spec)
    guid = parsed[schema.GUID].numpy()[0].decode("utf-8")
    rows.append((scoring.guid_sort_key(guid),
                 {name: parsed[name].numpy() for name in GOOGLE_FEATURES}))
  rows.sort(key=lambda row: row[0])
  records = [_google_example(values) for _, values in rows]
  padding = {name: np.zeros(metadata.max_seq_length if name in schema.SEQUENCE_FEATURES else 1,
                            np.int64) for name in GOOGLE_FEATURES}
  while pad_to and len(records) % pad_to:
    records.append(_google_example(padding))
  tmp = f"{path}.tmp"
  with tf.io.TFRecordWriter(tmp) as writer:
    for record in records:
      writer.write(record)
  fileio.rename(tmp, path)
  return len(records)


def _train(config: RunClassifierConfig, data_dir: str) -> None:
  train_lib.run(TrainConfig(
      data_dir=data_dir, model_dir=config.output_dir, init_checkpoint=config.init_checkpoint,
      model_config_file=config.bert_config_file, vocab_file=config.vocab_file,
      epochs=config.num_train_epochs, batch_size=config.train_batch_size,
      eval_batch_size=config.eval_batch_size, learning_rate=config.learning_rate,
      warmup_proportion=config.warmup_proportion,
      checkpoint_every_steps=config.save_checkpoints_steps,
      strategy="tpu" if config.use_tpu else "auto", tpu=config.tpu_name,
      tpu_zone=config.tpu_zone, gcp_project=config.gcp_project))


def _trained_model(config: RunClassifierConfig) -> str:
  """The checkpoint evaluation and prediction read: the last one saved, as the Estimator's."""
  if not ModelDir(config.output_dir).latest_checkpoint():
    raise FileNotFoundError(
        f"--output_dir {config.output_dir} holds no trained model to evaluate or predict with: "
        "add --do_train=true (or give the output_dir of an earlier training run).")
  return ModelDir(config.output_dir).checkpoint("latest")


def eval_results(config: RunClassifierConfig, data_dir: str,
                 metadata: schema.DataMetadata) -> Dict[str, float]:
  """run_classifier's evaluation: eval_accuracy and eval_loss over the dev set, global_step, and
  the Estimator's `loss` (the mean over eval batches of each batch's mean loss)."""
  checkpoint = _trained_model(config)
  logits_fn, labels, vocab_sha, _ = scoring.model_logits_fn(config.output_dir, which="latest")
  scoring.check_same_labels(labels, metadata.labels, config.output_dir, data_dir)
  scoring.check_same_vocab(vocab_sha, metadata, config.output_dir, data_dir)
  scores = scoring.score_split(logits_fn, data_dir, metadata, "dev", config.eval_batch_size,
                               desc="eval")
  computed = metrics_lib.classification_metrics(scores["label_ids"], scores["logits"],
                                                scores["is_real_example"], metadata.labels)
  per_example = metrics_lib.per_example_loss(scores["label_ids"],
                                             np.asarray(scores["logits"], np.float64))
  batches = [per_example[i:i + config.eval_batch_size]
             for i in range(0, len(per_example), config.eval_batch_size)]
  return {"eval_accuracy": computed["eval_accuracy"], "eval_loss": computed["eval_loss"],
          "global_step": int(tf.train.load_checkpoint(checkpoint).get_tensor(_STEP_KEY)),
          "loss": float(np.mean([batch.mean() for batch in batches]))}


def format_eval_results(results: Dict[str, float]) -> str:
  """`key = value` lines, keys sorted, values as run_classifier prints its float32 metrics."""
  def text(value):
    return str(value) if isinstance(value, int) else str(np.float32(value))
  return "".join(f"{key} = {text(results[key])}\n" for key in sorted(results))


def run(config: RunClassifierConfig) -> Dict[str, str]:
  """Does what run_classifier.py does with these flags; returns {what: path written}."""
  task = check(config)
  fileio.makedirs(config.output_dir)
  written: Dict[str, str] = {}
  if config.do_train:
    train_data = fileio.join(config.output_dir, FEATURES_DIR, "train")
    metadata = _preprocess(config, task, ["train"], train_data)
    written["train"] = _write_records(config, train_data, metadata, "train", 0)
    _train(config, train_data)
    written["checkpoint"] = ModelDir(config.output_dir).checkpoint("latest")
  splits = [s for s, wanted in (("dev", config.do_eval), ("test", config.do_predict)) if wanted]
  if not splits:
    return written
  _trained_model(config)  # before the preprocess: a missing model is named at once
  eval_data = fileio.join(config.output_dir, FEATURES_DIR, "eval")
  metadata = _preprocess(config, task, splits, eval_data)
  batch_size = {"dev": config.eval_batch_size, "test": config.predict_batch_size}
  for split in splits:
    written[split] = _write_records(config, eval_data, metadata, split,
                                    batch_size[split] if config.use_tpu else 0)
  if config.do_eval:
    results = format_eval_results(eval_results(config, eval_data, metadata))
    written["eval_results"] = fileio.join(config.output_dir, EVAL_RESULTS_FILE)
    fileio.write_text_atomic(written["eval_results"], results)
    log.info("Eval results:\n%s", results)
  if config.do_predict:
    written["test_results"] = predict_lib.run(PredictConfig(
        model=config.output_dir, data_dir=eval_data, split="test",
        output=fileio.join(config.output_dir, schema.PREDICTIONS_FILE),
        batch_size=config.predict_batch_size))
  return written


def _write_records(config: RunClassifierConfig, data_dir: str, metadata: schema.DataMetadata,
                   split: str, pad_to: int) -> str:
  path = fileio.join(config.output_dir, RECORD_FILES[split])
  n = write_google_records(data_dir, metadata, split, path, pad_to)
  log.info("Wrote %d %s examples to %s", n, split, path)
  return path


# The flags live with the config (pipeline/run_classifier_config.py): `--help` answers without
# TensorFlow.
build_parser = run_classifier_config.build_parser


def main(argv: Optional[List[str]]) -> int:
  written = run(config_from_args(argv or []))
  for what, path in written.items():
    print(f"{what}: {path}")
  return 0
