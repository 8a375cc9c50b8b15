"""`bertline train`: fine-tune a BERT/ALBERT classifier, keeping tf.estimator's contract.

The Estimator is gone from TensorFlow; what its users relied on is kept on
tf.distribute: a model_dir that holds everything (ModelDir), re-running the
same command resumes exactly (model, optimizer slots, step, learning-rate
schedule, dropout RNG, loss scale and input position are all in the
checkpoint), train_and_evaluate with periodic evaluation over every dev
example, and early stopping.

The roles live apart: the settings in config.py, the strategy in
strategy.py, loss scaling in loss_scale.py, best-and-early-stopping
bookkeeping in tracking.py, the step functions and the loop in loop.py. This
module sets a run up (`run`) and is the CLI (`main`).
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import tempfile
from typing import Any, List, NamedTuple, Optional

import keras
import tensorflow as tf

from bertline import configs, errors, fileio, flags, schema
from bertline.errors import TrainingDiverged
from bertline.evaluator import thresholds
from bertline.exporter import export as export_lib
from bertline.exporter import push as push_lib
from bertline.model import checkpoints
from bertline.model import model_dir as model_dir_lib
from bertline.model import modeling
from bertline.model.checkpoints import google
from bertline.model.model_config import ModelConfig
from bertline.preprocessing import tokenization
from bertline.trainer import config as train_config_lib
from bertline.trainer import distill, inputs, loop, optimization
from bertline.trainer import strategy as strategy_lib
from bertline.trainer import vertex
from bertline.trainer.config import TrainConfig, resolve_precision
from bertline.trainer.loop import Schedule, TrainResult
from bertline.trainer.loss_scale import LossScale

log = logging.getLogger("bertline.train")

__all__ = ["TrainConfig", "TrainResult", "TrainingDiverged", "run", "main"]

# The flags live with the config (trainer/config.py): `--help` answers without TensorFlow.
build_parser = train_config_lib.build_parser


# --- what is trained ---------------------------------------------------------------------
class Classification:
  """What `bertline train` trains: run_classifier's classifier on preprocess output.

  The loop, the model_dir, resuming, strategies and precision are the same for
  every kind; a kind says what data it reads, which model it builds, how its
  batches are made and what its loop optimises (`bertline pretrain`'s
  pretraining/pretrain.py is the other kind).
  """

  command = "train"

  @staticmethod
  def read_metadata(data_dir: str) -> schema.DataMetadata:
    return schema.read_metadata(data_dir)

  @staticmethod
  def labels(metadata: schema.DataMetadata) -> List[str]:
    return list(metadata.labels)

  @staticmethod
  def build_model(config: TrainConfig, model_config, metadata: schema.DataMetadata):
    return modeling.BertClassifier(model_config, len(metadata.labels),
                                   dropout_rate=config.classifier_dropout)

  @staticmethod
  def train_dataset(config: TrainConfig, metadata: schema.DataMetadata, static_shapes: bool,
                    vocab: str):
    options = inputs.InputOptions(shuffle_buffer=config.shuffle_buffer,
                                  trim=config.trim_batches and not static_shapes,
                                  bucket_boundaries=tuple(config.bucket_boundaries))
    return inputs.train_dataset(config.data_dir, metadata, config.batch_size, config.seed,
                                options)

  @staticmethod
  def task(config: TrainConfig, metadata: schema.DataMetadata, strategy, vocab: str):
    teacher = None
    if config.teacher:
      _, teacher_model = distill.load_teacher(config.teacher, metadata, strategy)
      teacher = distill.Teacher(teacher_model, config.temperature, config.alpha)
    return loop.ClassificationTask(teacher, multi_label=metadata.multi_label)


CLASSIFICATION = Classification()


# --- set-up ------------------------------------------------------------------------------
# The chief's claim on its model_dir while it trains (fileio.output_claim: released by the
# kernel however the process ends).
TRAIN_LOCK = ".train.lock"


def _model_files(config: TrainConfig, metadata: schema.DataMetadata):
  """(ModelConfig, vocab file, PretrainedFiles or None) for this run."""
  if config.vocab_file:  # before anything reads it: a directory given is named as one
    tokenization.check_vocab_file(config.vocab_file)
  if config.teacher and not config.init_checkpoint:
    # Distillation: the teacher's architecture with fewer layers, its vocabulary.
    teacher = distill.teacher_dir(config.teacher)
    files = None
    model_config = distill.student_config(teacher.model_config(), config.student_layers)
    vocab = teacher.vocab_file
  elif config.init_checkpoint:
    files = checkpoints.resolve_pretrained(config.init_checkpoint)
    model_config = files.validate_for(max_seq_length=metadata.max_seq_length,
                                      vocab_file=config.vocab_file or None,
                                      do_lower_case=metadata.do_lower_case)
    vocab = config.vocab_file or files.vocab_file
    if not vocab:
      raise FileNotFoundError(
          f"No vocab.txt beside {config.init_checkpoint}; pass --vocab-file (the vocabulary "
          "the data was preprocessed with).")
  else:
    if not (config.model_config_file and config.vocab_file):
      raise ValueError("Pass --init-checkpoint (the pretrained model to fine-tune), or both "
                       "--model-config-file and --vocab-file to train from random weights.")
    files = None
    model_config = ModelConfig.from_json_file(config.model_config_file)
    vocab = config.vocab_file
    if metadata.max_seq_length > model_config.max_position_embeddings:
      raise ValueError(
          f"Cannot use sequence length {metadata.max_seq_length} because the model config "
          f"{config.model_config_file} has max_position_embeddings "
          f"{model_config.max_position_embeddings}.")
  tokenization.check_vocab_file(vocab)
  if metadata.vocab_sha256 and fileio.sha256_file(vocab) != metadata.vocab_sha256:
    raise ValueError(
        f"{vocab} is not the vocabulary {config.data_dir} was preprocessed with (sha256 "
        f"{fileio.sha256_file(vocab)[:12]} vs metadata.json's {metadata.vocab_sha256[:12]}). "
        "Re-run `bertline preprocess --vocab-file` with the model's vocab.txt.")
  if config.teacher and config.student_layers and (
      model_config.num_hidden_layers != config.student_layers):
    raise ValueError(f"--student-layers {config.student_layers}, but the student's checkpoint "
                     f"{config.init_checkpoint} has {model_config.num_hidden_layers} layers; "
                     "drop one of them.")
  if config.hidden_dropout is not None:
    d = model_config.to_dict()
    d.update(hidden_dropout_prob=config.hidden_dropout,
             attention_probs_dropout_prob=config.hidden_dropout)
    model_config = ModelConfig.from_dict(d)
  return model_config, vocab, files


def _check_resume(md: model_dir_lib.ModelDir, metadata: schema.DataMetadata, data_dir: str):
  """Refuses data that does not fit the model_dir being resumed, showing both values."""
  if not fileio.exists(md.file(schema.DATA_METADATA_COPY)):
    return
  old = md.data_metadata()
  problems = []
  if old.max_seq_length != metadata.max_seq_length:
    problems.append(f"max_seq_length: model_dir {old.max_seq_length}, data "
                    f"{metadata.max_seq_length}")
  if getattr(old, "labels", None) != getattr(metadata, "labels", None):
    problems.append(f"labels: model_dir {getattr(old, 'labels', None)}, data "
                    f"{getattr(metadata, 'labels', None)}")
  if old.vocab_sha256 != metadata.vocab_sha256:
    problems.append(f"vocab_sha256: model_dir {old.vocab_sha256[:12]}, data "
                    f"{metadata.vocab_sha256[:12]}")
  if problems:
    raise ValueError(
        f"{md.path} was trained on different data than {data_dir}: " + "; ".join(problems) +
        ". Resume with the original data, or choose a new --model-dir.")


_ARCHITECTURE_FIELDS = ("model_type", "vocab_size", "hidden_size", "num_hidden_layers",
                        "num_attention_heads", "intermediate_size", "embedding_size")


def _num_train_steps(config: TrainConfig, metadata: schema.DataMetadata) -> int:
  # run_classifier: int(len(train_examples) / train_batch_size * num_train_epochs).
  n = metadata.splits["train"].num_examples
  if n == 0:
    raise ValueError(f"{config.data_dir}: the train split has no examples (see its "
                     f"{metadata.splits['train'].rejected_file} for rejected rows).")
  steps = int(n / config.batch_size * config.epochs)
  if steps >= 1:
    return steps
  if config.max_steps:
    return config.max_steps
  raise ValueError(f"{config.data_dir} has {n} training examples: fewer than one batch of "
                   f"{config.batch_size} over {config.epochs} epochs. Lower --batch-size.")


def _use_xla(config: TrainConfig, static_shapes: bool) -> bool:
  """The --xla setting, or the per-device default when it is unset."""
  if config.xla is not None:
    return config.xla
  if not modeling.default_jit_compile():
    return False
  many_shapes = config.trim_batches and not config.bucket_boundaries and not static_shapes
  return not many_shapes


def _check_architecture(md: model_dir_lib.ModelDir, model_config, source: str) -> None:
  """Refuses to resume a model_dir that holds another architecture, showing both values."""
  if not fileio.exists(md.file(schema.MODEL_CONFIG_FILE)):
    return
  old = md.model_config()
  diffs = [f"{k}: model_dir {getattr(old, k)!r}, now {getattr(model_config, k)!r}"
           for k in _ARCHITECTURE_FIELDS if getattr(old, k) != getattr(model_config, k)]
  if diffs:
    raise ValueError(f"{md.path} holds a different model than {source}: " + "; ".join(diffs) +
                     ". Resume with the original model, or choose a new --model-dir.")


def _restore_newest_intact(checkpoint, directory: str) -> str:
  """Restores the newest checkpoint that reads back whole; "" when there is none at all.

  A damaged one (truncated .data, missing shard) is skipped with a warning: the
  run resumes from the one before instead of restarting from the pretrained
  weights and overwriting the numbered checkpoints. When every one is damaged
  the run is refused, naming them.
  """

  # Read from the files themselves, newest first: the `checkpoint` state file
  # may be missing or name a checkpoint that is gone.
  found = list(reversed(google.prefixes(directory)))
  damaged = []
  for prefix in found:
    try:
      checkpoint.restore(prefix).assert_consumed()
      if damaged:
        log.warning("Resuming from %s: newer checkpoint(s) are damaged: %s", prefix,
                    "; ".join(damaged))
      return prefix
    except (IndexError, ValueError, AssertionError, tf.errors.OpError) as e:
      damaged.append(f"{prefix} ({type(e).__name__}: {str(e).splitlines()[0][:160]})")
  if damaged:
    raise ValueError(f"every checkpoint in {directory} is damaged: " + "; ".join(damaged) +
                     ". Restore them from a copy, or move them away to start over.")
  return ""


def _remove_unfinished_saves(md: model_dir_lib.ModelDir) -> None:
  """Deletes the ckpt-N_temp directories a save killed midway leaves behind (often 100s of MB)."""
  for directory in (md.checkpoint_dir, md.best_dir):
    for temp in fileio.glob(fileio.join(directory, "*_temp*")):
      if fileio.isdir(temp) and not fileio.is_remote(temp):
        log.warning("Removing %s, left by a checkpoint save that was killed.", temp)
        shutil.rmtree(temp, ignore_errors=True)


def _schedule(config: TrainConfig, metadata: schema.DataMetadata) -> tuple:
  """(Schedule, total steps of the learning-rate schedule, warmup steps)."""
  num_train_steps = _num_train_steps(config, metadata)
  warmup = int(num_train_steps * config.warmup_proportion)
  stop_step = min(num_train_steps, config.max_steps) if config.max_steps else num_train_steps
  steps_per_epoch = max(1, metadata.splits["train"].num_examples // config.batch_size)
  schedule = Schedule(stop_step=stop_step, eval_every=config.eval_every_steps or steps_per_epoch,
                      checkpoint_every=config.checkpoint_every_steps,
                      log_every=config.log_every_steps)
  return schedule, num_train_steps, warmup


def _build_model(config: TrainConfig, info, model_config, metadata, kind):
  """The kind's model, its variables placed by the strategy, layers under the precision policy."""

  keras.utils.set_random_seed(config.seed)
  # The policy applies to layers built under it; it is restored for the caller.
  previous_policy = keras.mixed_precision.global_policy()
  if config.mixed_precision != "none":
    keras.mixed_precision.set_global_policy(config.mixed_precision)
  try:
    with info.strategy.scope():
      return kind.build_model(config, model_config, metadata)
  finally:
    keras.mixed_precision.set_global_policy(previous_policy)


def run(config: TrainConfig, kind: Classification = CLASSIFICATION) -> TrainResult:
  """Trains (or resumes) per `config`; returns what it ended with.

  Set-up (the data, the model_dir, the starting weights) is checked before
  any step; then the Trainer's loop (trainer/loop.py) runs, and with `export`
  the best model is exported. From its first write the model_dir is this job's:
  a second trainer of it is refused (the chief holds the claim; the job's other
  workers write under _workers/).
  """
  _check_paths(config)
  metadata = kind.read_metadata(config.data_dir)
  if "train" not in metadata.splits:
    raise ValueError(f"{config.data_dir} has no train split (it has {sorted(metadata.splits)}).")
  if config.teacher and getattr(metadata, "multi_label", False):
    raise ValueError(f"{config.data_dir} is a multi-label task: distillation of multi-label "
                     "models is not built yet; train the student with `bertline train` instead")
  md = model_dir_lib.ModelDir(config.model_dir)
  _check_resume(md, metadata, config.data_dir)
  plan = _Plan(metadata, md, *_model_files(config, metadata))
  _check_architecture(md, plan.model_config, config.init_checkpoint or config.model_config_file)
  if not strategy_lib.is_chief_process():
    return _train(config, plan, kind)
  with fileio.output_claim(config.model_dir, TRAIN_LOCK,
                           f"another `bertline {kind.command}` is training in --model-dir "
                           f"{config.model_dir}; wait for it, or give another --model-dir"):
    _check_resume(md, metadata, config.data_dir)  # again: what was there before the claim
    return _train(config, plan, kind)


class _Plan(NamedTuple):
  """What the checks before training found: the data, the model_dir, the model's files."""
  metadata: schema.DataMetadata
  md: model_dir_lib.ModelDir
  model_config: ModelConfig
  vocab: str
  pretrained: Any


def _train(config: TrainConfig, plan: _Plan, kind: Classification) -> TrainResult:
  metadata, md = plan.metadata, plan.md
  schedule, num_train_steps, warmup = _schedule(config, metadata)
  info = _strategy(config)
  # What the model_dir records is what ran: `auto` precision resolved on this machine.
  config = dataclasses.replace(config, mixed_precision=resolve_precision(
      config.mixed_precision, has_gpu=bool(tf.config.list_logical_devices("GPU"))))
  if info.is_chief:
    _write_model_dir(md, config, plan.model_config, metadata, plan.vocab, kind.labels(metadata))
  model = _build_model(config, info, plan.model_config, metadata, kind)
  task = kind.task(config, metadata, info.strategy, plan.vocab)
  dataset = kind.train_dataset(config, metadata, info.static_shapes, plan.vocab)
  state = _training_state(config, info, md, model, dataset, num_train_steps, warmup)
  _initialize(config, md, info, state, model, plan.pretrained,
              getattr(task, "teacher", None))
  trainer = loop.Trainer(config, info, model, state.optimizer, state.loss_scale, metadata, md,
                         state.manager, state.best_manager, state.iterator,
                         xla=_use_xla(config, static_shapes=info.static_shapes), task=task)
  result = trainer.fit(schedule)
  if kind is CLASSIFICATION and metadata.multi_label and info.is_chief and not result.preempted:
    thresholds.choose(config.model_dir, config.data_dir, metadata, config.label_threshold)
  if config.export and info.is_chief and not result.preempted:
    exported = _export(config)
    log.info("Exported the best model to %s", exported)
    result = dataclasses.replace(result, exported=exported)
  return result


def _export(config: TrainConfig) -> str:
  """The best model as <export_dir>/<version>. Export writes locally and atomically; a gs://
  export_dir (Vertex AI's AIP_MODEL_DIR) gets the version through push's checked,
  create-only upload, after its serving check. Forced: --export ships the best checkpoint
  without an evaluation, as a local export does."""
  if not fileio.is_remote(config.export_dir):
    return export_lib.export_model(config.model_dir, config.export_dir)
  with tempfile.TemporaryDirectory(prefix="bertline-export-") as local:
    version = export_lib.export_model(config.model_dir, local)
    return push_lib.push(version, config.export_dir, force=True)


def _check_paths(config: TrainConfig) -> None:
  if not config.data_dir or not config.model_dir:
    raise ValueError("--data-dir and --model-dir are required (on Vertex AI, --model-dir "
                     "defaults to $AIP_CHECKPOINT_DIR).")
  if config.export and not config.export_dir:
    raise ValueError("--export needs --export-dir (on Vertex AI it defaults to $AIP_MODEL_DIR).")


def _strategy(config: TrainConfig) -> strategy_lib.StrategyInfo:
  """The one tf.distribute strategy of the run, and the batch sizes checked against it."""
  tf_config = vertex.tf_config_from_cluster_spec()
  if tf_config:  # TensorFlow's cluster resolver reads TF_CONFIG from the environment
    os.environ["TF_CONFIG"] = tf_config
  info = strategy_lib.create_strategy(config.strategy, config.tpu or None,
                                      config.tpu_zone or None, config.gcp_project or None)
  replicas = info.strategy.num_replicas_in_sync
  if config.batch_size % (replicas * config.grad_accum_steps):
    raise ValueError(f"batch_size {config.batch_size} must divide by replicas ({replicas}) x "
                     f"grad_accum_steps ({config.grad_accum_steps}).")
  if config.eval_batch_size % replicas:
    raise ValueError(f"eval_batch_size {config.eval_batch_size} must divide by the "
                     f"{replicas} replicas.")
  return info


def _write_model_dir(md: model_dir_lib.ModelDir, config: TrainConfig, model_config,
                     metadata, vocab: str, labels: List[str]) -> None:
  """What later stages read of the run, written before its first step (the chief only)."""
  fileio.makedirs(md.path)
  md.write_json(schema.MODEL_CONFIG_FILE, model_config.to_dict())
  if labels:  # a classifier's; pre-training has none
    md.write_labels(labels)
  md.write_vocab(vocab)
  md.write_json(schema.DATA_METADATA_COPY, metadata.to_dict())
  md.write_json(schema.TRAIN_CONFIG_FILE, configs.to_dict(config))


class _TrainingState(NamedTuple):
  """Everything a checkpoint holds besides the model, and the managers that save it."""
  optimizer: Any
  loss_scale: LossScale
  iterator: Any
  checkpoint: tf.train.Checkpoint
  ckpt_dir: str
  manager: tf.train.CheckpointManager
  best_manager: tf.train.CheckpointManager


def _training_state(config: TrainConfig, info, md: model_dir_lib.ModelDir, model,
                    dataset: tf.data.Dataset, num_train_steps: int,
                    warmup: int) -> _TrainingState:
  with info.strategy.scope():
    optimizer = optimization.create_optimizer(config.learning_rate, num_train_steps, warmup,
                                              config.weight_decay, config.clip_norm or None)
    optimizer.build(model.trainable_variables)
    loss_scale = LossScale(config.mixed_precision, config.loss_scale)
  # Keras keeps dropout's RNG state out of tf.train.Checkpoint; we save it ourselves.
  rng_state = [v.value for v in model.variables if "seed_generator_state" in v.path]
  iterator = iter(dataset)
  checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, input=iterator,
                                   rng=rng_state, loss_scale=loss_scale.variables)
  ckpt_dir = md.checkpoint_dir if info.is_chief else fileio.join(
      md.path, "_workers", f"worker-{info.worker_index}")
  manager = tf.train.CheckpointManager(checkpoint, ckpt_dir, max_to_keep=config.keep_checkpoints,
                                       step_counter=optimizer.iterations)
  best_manager = tf.train.CheckpointManager(
      tf.train.Checkpoint(model=model), md.best_dir if info.is_chief else fileio.join(
          ckpt_dir, "best"), max_to_keep=1, step_counter=optimizer.iterations)
  return _TrainingState(optimizer, loss_scale, iterator, checkpoint, ckpt_dir, manager,
                        best_manager)


def _initialize(config: TrainConfig, md: model_dir_lib.ModelDir, info, state: _TrainingState,
                model, pretrained, teacher) -> None:
  """Resumes from the newest intact checkpoint, else loads the starting weights."""
  if info.is_chief:
    _remove_unfinished_saves(md)
  resumed = _restore_newest_intact(state.checkpoint, state.ckpt_dir)
  if resumed:
    log.info("Resumed from %s at step %d.", resumed, int(state.optimizer.iterations.numpy()))
  elif pretrained is not None:
    checkpoints.load_pretrained(model, pretrained)  # logs what it loaded
  elif teacher is not None:
    layer_map = distill.student_layer_map(teacher.model.config.num_hidden_layers,
                                          model.config.num_hidden_layers)
    copied = distill.init_from_teacher(model, teacher.model, layer_map)
    log.info("Student initialised from the teacher %s: %d weights, transformer layers %s.",
             config.teacher, copied, layer_map)


# --- the CLI -----------------------------------------------------------------------------
# The flags are TrainConfig's own (trainer/config.py), parsed there without TensorFlow, so
# `bertline train --help` and a misspelled flag answer at once.
def config_from_args(argv: Optional[List[str]],
                     parser: Optional[flags.ArgumentParser] = None) -> TrainConfig:
  """The TrainConfig of a command line (`parser`: train's, or distill's, which extends it),
  with the paths Vertex AI gives filled in."""
  return vertex.apply(train_config_lib.from_command_line(argv, parser))


def main(argv: Optional[List[str]] = None) -> int:
  return report(run(config_from_args(argv)), "train")


def report(result: TrainResult, command: str) -> int:
  """Prints a run's outcome on one line; returns the exit code (143: interrupted, saved)."""
  if result.preempted:
    print(f"{command}: interrupted at step {result.final_step}; saved {result.latest_checkpoint}. "
          "Re-run the same command to resume.")
    return errors.INTERRUPTED
  metrics = ", ".join(f"{k} {v:.4f}" for k, v in result.final_metrics.items()
                      if k.startswith("eval_") and isinstance(v, float))
  print(f"{command}: step {result.final_step}{'; stopped early' if result.stopped_early else ''}"
        f"{'; ' + metrics if metrics else ''}; best {result.best_checkpoint or '-'}; "
        f"latest {result.latest_checkpoint}"
        f"{'; exported ' + result.exported if result.exported else ''}")
  return 0
