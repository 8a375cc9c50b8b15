"""`bertline train`: fine-tune a BERT/ALBERT classifier, keeping tf.estimator's contract.

The Estimator is gone from TensorFlow; what its users relied on is kept on
tf.distribute: a model_dir that holds everything (ModelDir), re-running the
same command resumes exactly (model, optimizer slots, step, learning-rate
schedule, dropout RNG and input position are all in the checkpoint),
train_and_evaluate with periodic evaluation over every dev example, and
early stopping.

One training step (one optimizer update):

  next(global batch of `batch_size`, trimmed to its longest sequence)
  -> each replica takes its slice (replica r of n: rows r·B/n .. (r+1)·B/n)
  -> `grad_accum_steps` micro-batches: forward, sum(per-example loss)/B, backward
  -> gradients summed over replicas and workers, clipped, AdamWeightDecay

Every worker reads the same seeded global batches and keeps its own slice, so
the updates are those of one device with the same global batch, whatever the
number of GPUs or workers.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import math
import os
import signal
import time
from typing import Any, Dict, List, Optional

from bertline import configs, fileio, schema
from bertline import model_dir as model_dir_lib

log = logging.getLogger("bertline.train")

EARLY_STOPPING_METRICS = ("eval_loss", "eval_accuracy")
# Dynamic loss scaling for mixed_float16 (the values of Keras' LossScaleOptimizer).
INITIAL_LOSS_SCALE = 2.0 ** 15
LOSS_SCALE_GROWTH_STEPS = 2000
PRECISIONS = ("none", "mixed_float16", "mixed_bfloat16")


@dataclasses.dataclass
class TrainConfig:
  """Everything a training run depends on (YAML/JSON; CLI flags use the same names).

  Attributes:
    data_dir: str. A `bertline preprocess` output (holds metadata.json).
    model_dir: str. Where checkpoints, configs and events go; re-running with
      the same model_dir resumes.
    init_checkpoint: str. The pretrained model to fine-tune (Google TF1/ALBERT
      checkpoint, Hugging Face directory, bertline model_dir). Empty: train
      from random weights (needs model_config_file and vocab_file).
    model_config_file: str. bert_config.json / config.json for random init.
    vocab_file: str. vocab.txt for random init (copied into the model_dir).
    epochs: float. Passes over the training set (run_classifier: 3).
    batch_size: int. Global batch size per optimizer update (run_classifier: 32).
    eval_batch_size: int. Global batch size of evaluation.
    learning_rate: float. Peak learning rate (run_classifier: 5e-5).
    warmup_proportion: float. Fraction of the steps spent warming up (0.1).
    weight_decay: float. AdamWeightDecay's decay rate (BERT: 0.01).
    clip_norm: float. Global-norm gradient clipping (BERT: 1.0; 0: none).
    max_steps: int. Stop after this many updates (0: after `epochs`); the
      learning-rate schedule still spans `epochs`, as the Estimator's max_steps.
    eval_every_steps: int. Evaluate (and checkpoint) every N updates (0: every epoch).
    checkpoint_every_steps: int. Also checkpoint every N updates.
    keep_checkpoints: int. Rolling checkpoints kept in checkpoints/.
    early_stopping_patience: int. Stop after this many evaluations without
      improvement of early_stopping_metric (0: never).
    early_stopping_metric: str. eval_loss (lower is better) or eval_accuracy;
      also picks the checkpoint kept in best/.
    grad_accum_steps: int. Micro-batches per update (batch_size must divide
      by grad_accum_steps x replicas): the batch_size of a big GPU on a small one.
    seed: int. Seeds the initialisation of new weights, dropout and input order.
    strategy: str. auto|cpu|gpu|mirrored|tpu|multi-worker (see strategy.py).
    tpu, tpu_zone, gcp_project: str. Cloud TPU name and where it is.
    mixed_precision: str. none, mixed_float16 (GPUs) or mixed_bfloat16 (TPUs, recent CPUs).
    loss_scale: float. mixed_float16's loss scale: 0 (default) scales dynamically
      (starts at 2^15, halves and skips the update on NaN/Inf gradients, doubles
      after 2000 good steps); a positive value is a static scale.
    xla: bool or None. XLA-compile each replica's forward and backward pass.
      None (default) decides per device: on for GPUs and TPUs, off on CPU,
      where it is slower (BENCHMARKS.md); on GPUs also off when batches are
      trimmed without length buckets, since XLA compiles every distinct length.
    shuffle_buffer: int. Training examples in the shuffle buffer.
    trim_batches: bool. Cut each batch to its longest real sequence (ignored on TPU).
    bucket_boundaries: list of int. Sequence-length buckets for batching (empty: none).
    classifier_dropout: float. Dropout on the pooled output (run_classifier: 0.1).
    hidden_dropout: float or None. Overrides the model config's hidden and
      attention dropout (None: keep the checkpoint's).
    log_every_steps: int. TensorBoard summary interval.
    progress: bool. Show a progress bar.
  """

  data_dir: str = ""
  model_dir: str = ""
  init_checkpoint: str = ""
  model_config_file: str = ""
  vocab_file: str = ""
  epochs: float = 3.0
  batch_size: int = 32
  eval_batch_size: int = 32
  learning_rate: float = 5e-5
  warmup_proportion: float = 0.1
  weight_decay: float = 0.01
  clip_norm: float = 1.0
  max_steps: int = 0
  eval_every_steps: int = 0
  checkpoint_every_steps: int = 1000
  keep_checkpoints: int = 3
  early_stopping_patience: int = 0
  early_stopping_metric: str = "eval_loss"
  grad_accum_steps: int = 1
  seed: int = 12345
  strategy: str = "auto"
  tpu: str = ""
  tpu_zone: str = ""
  gcp_project: str = ""
  mixed_precision: str = "none"
  loss_scale: float = 0.0
  xla: Optional[bool] = None
  shuffle_buffer: int = 10000
  trim_batches: bool = True
  bucket_boundaries: List[int] = dataclasses.field(default_factory=list)
  classifier_dropout: float = 0.1
  hidden_dropout: Optional[float] = None
  log_every_steps: int = 10
  progress: bool = True

  def __post_init__(self):
    from bertline.trainer import strategy as strategy_lib
    for key in ("batch_size", "eval_batch_size", "grad_accum_steps", "keep_checkpoints",
                "checkpoint_every_steps", "log_every_steps", "shuffle_buffer"):
      if getattr(self, key) < 1:
        raise configs.ConfigError(f"{key} must be at least 1, got {getattr(self, key)}.")
    for key in ("max_steps", "eval_every_steps", "early_stopping_patience"):
      if getattr(self, key) < 0:
        raise configs.ConfigError(f"{key} must be 0 or more, got {getattr(self, key)}.")
    if self.epochs <= 0 and not self.max_steps:
      raise configs.ConfigError(f"epochs must be positive (got {self.epochs}), or set max_steps.")
    if self.learning_rate <= 0:
      raise configs.ConfigError(f"learning_rate must be positive, got {self.learning_rate}.")
    if not 0 <= self.warmup_proportion < 1:
      raise configs.ConfigError(
          f"warmup_proportion must be in [0, 1), got {self.warmup_proportion}.")
    if self.batch_size % self.grad_accum_steps:
      raise configs.ConfigError(
          f"batch_size {self.batch_size} is not a multiple of grad_accum_steps "
          f"{self.grad_accum_steps}: each update averages grad_accum_steps equal micro-batches.")
    configs.choice(self.early_stopping_metric, EARLY_STOPPING_METRICS, "early_stopping_metric")
    configs.choice(self.strategy, strategy_lib.STRATEGIES, "strategy")
    configs.choice(self.mixed_precision, PRECISIONS, "mixed_precision")
    if not 0 <= self.classifier_dropout < 1:
      raise configs.ConfigError(
          f"classifier_dropout must be in [0, 1), got {self.classifier_dropout}.")

  @classmethod
  def from_dict(cls, data: Dict[str, Any], where: str = "train config") -> "TrainConfig":
    return configs.from_dict(cls, data, where)


@dataclasses.dataclass
class TrainResult:
  """What a training run ended with.

  Attributes:
    final_step: int. Optimizer updates applied.
    final_metrics: dict. The last evaluation (eval_loss, eval_accuracy, ...).
    best_metrics: dict. The evaluation of the checkpoint in best/.
    latest_checkpoint: str. The last rolling checkpoint.
    best_checkpoint: str. The best checkpoint ("" when there was no evaluation).
    stopped_early: bool. Early stopping ended the run.
    preempted: bool. SIGTERM ended the run (re-run the same command to resume).
    model_dir: str.
    train_examples_per_second: float. Training speed of this process's steps
      after its first (which traces), evaluation and checkpointing excluded.
  """

  final_step: int
  final_metrics: Dict[str, float]
  best_metrics: Dict[str, float]
  latest_checkpoint: str
  best_checkpoint: str
  stopped_early: bool = False
  preempted: bool = False
  model_dir: str = ""
  train_examples_per_second: float = 0.0


def _scalar(name: str, value: float) -> None:
  """tf.summary.scalar without the tensorboard package (a scalars-plugin summary)."""
  import tensorflow as tf
  from tensorflow.core.framework import summary_pb2
  metadata = summary_pb2.SummaryMetadata()
  metadata.plugin_data.plugin_name = "scalars"
  tf.summary.write(name, tf.constant(float(value), tf.float32), metadata=metadata)


class TrainingDiverged(ValueError):
  """The loss became NaN or Inf; the last good checkpoint is kept."""


# --- set-up ------------------------------------------------------------------------------
def _model_files(config: TrainConfig, metadata: schema.DataMetadata):
  """(ModelConfig, vocab file, PretrainedFiles or None) for this run."""
  from bertline.trainer.model_config import ModelConfig
  if config.init_checkpoint:
    from bertline.trainer import checkpoints
    files = checkpoints.resolve_pretrained(config.init_checkpoint)
    model_config = files.validate_for(max_seq_length=metadata.max_seq_length,
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
  if not fileio.exists(vocab):
    raise FileNotFoundError(f"vocab file {vocab} not found.")
  if metadata.vocab_sha256 and fileio.sha256_file(vocab) != metadata.vocab_sha256:
    raise ValueError(
        f"{vocab} is not the vocabulary {config.data_dir} was preprocessed with (sha256 "
        f"{fileio.sha256_file(vocab)[:12]} vs metadata.json's {metadata.vocab_sha256[:12]}). "
        "Re-run `bertline preprocess --vocab-file` with the model's vocab.txt.")
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
  if old.labels != metadata.labels:
    problems.append(f"labels: model_dir {old.labels}, data {metadata.labels}")
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


class _Preemption:
  """Turns SIGTERM (preemption, `kill`) into a flag the loop checks after each step."""

  def __init__(self):
    self.requested = False
    self._previous = None

  def __enter__(self):
    import threading
    if threading.current_thread() is threading.main_thread():
      self._previous = signal.signal(signal.SIGTERM, self._handle)
    return self

  def _handle(self, signum, frame):
    log.warning("SIGTERM received: saving a checkpoint before exiting.")
    self.requested = True

  def __exit__(self, *exc):
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)


def _better(metric: str, value: float, best: Optional[float]) -> bool:
  if best is None:
    return True
  return value < best if metric == "eval_loss" else value > best


# --- the run -----------------------------------------------------------------------------
def _use_xla(config: TrainConfig, static_shapes: bool) -> bool:
  """The --xla setting, or the per-device default when it is unset."""
  if config.xla is not None:
    return config.xla
  from bertline.trainer import modeling
  if not modeling.default_jit_compile():
    return False
  many_shapes = config.trim_batches and not config.bucket_boundaries and not static_shapes
  return not many_shapes


def run(config: TrainConfig) -> TrainResult:
  """Trains (or resumes) per `config`; returns what it ended with."""
  import keras
  import tensorflow as tf

  from bertline.trainer import inputs, modeling, optimization
  from bertline.trainer import strategy as strategy_lib

  if not config.data_dir or not config.model_dir:
    raise ValueError("--data-dir and --model-dir are required.")
  metadata = schema.read_metadata(config.data_dir)
  if "train" not in metadata.splits:
    raise ValueError(f"{config.data_dir} has no train split (it has {sorted(metadata.splits)}).")
  md = model_dir_lib.ModelDir(config.model_dir)
  _check_resume(md, metadata, config.data_dir)
  model_config, vocab, pretrained = _model_files(config, metadata)
  if fileio.exists(md.file(schema.MODEL_CONFIG_FILE)):
    old = md.model_config()
    diffs = [f"{k}: model_dir {getattr(old, k)!r}, now {getattr(model_config, k)!r}"
             for k in _ARCHITECTURE_FIELDS if getattr(old, k) != getattr(model_config, k)]
    if diffs:
      source = config.init_checkpoint or config.model_config_file
      raise ValueError(f"{md.path} holds a different model than {source}: " + "; ".join(diffs) +
                       ". Resume with the original model, or choose a new --model-dir.")

  info = strategy_lib.create_strategy(config.strategy, config.tpu or None,
                                      config.tpu_zone or None, config.gcp_project or None)
  strategy = info.strategy
  replicas = strategy.num_replicas_in_sync
  if config.batch_size % (replicas * config.grad_accum_steps):
    raise ValueError(f"batch_size {config.batch_size} must divide by replicas ({replicas}) x "
                     f"grad_accum_steps ({config.grad_accum_steps}).")
  if config.eval_batch_size % replicas:
    raise ValueError(f"eval_batch_size {config.eval_batch_size} must divide by the "
                     f"{replicas} replicas.")
  has_dev = "dev" in metadata.splits

  if info.is_chief:
    fileio.makedirs(md.path)
    md.write_json(schema.MODEL_CONFIG_FILE, model_config.to_dict())
    md.write_labels(metadata.labels)
    md.write_vocab(vocab)
    md.write_json(schema.DATA_METADATA_COPY, metadata.to_dict())
    md.write_json(schema.TRAIN_CONFIG_FILE, configs.to_dict(config))

  float16 = config.mixed_precision == "mixed_float16"
  dynamic_scale = float16 and not config.loss_scale

  num_train_steps = _num_train_steps(config, metadata)
  warmup = int(num_train_steps * config.warmup_proportion)
  stop_step = min(num_train_steps, config.max_steps) if config.max_steps else num_train_steps
  steps_per_epoch = max(1, metadata.splits["train"].num_examples // config.batch_size)
  eval_every = config.eval_every_steps or steps_per_epoch

  keras.utils.set_random_seed(config.seed)
  # The policy applies to layers built under it; it is restored for the caller.
  previous_policy = keras.mixed_precision.global_policy()
  if config.mixed_precision != "none":
    keras.mixed_precision.set_global_policy(config.mixed_precision)
  try:
    with strategy.scope():
      model = modeling.BertClassifier(model_config, len(metadata.labels),
                                      dropout_rate=config.classifier_dropout)
  finally:
    keras.mixed_precision.set_global_policy(previous_policy)
  with strategy.scope():
    optimizer = optimization.create_optimizer(config.learning_rate, num_train_steps, warmup,
                                              config.weight_decay, config.clip_norm or None)
    optimizer.build(model.trainable_variables)
    # [scale, good steps since the last change]; constant 1 outside float16.
    loss_scale = tf.Variable(INITIAL_LOSS_SCALE if dynamic_scale else (config.loss_scale or 1.0),
                             trainable=False, dtype=tf.float32, name="loss_scale",
                             aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
    good_steps = tf.Variable(0, trainable=False, dtype=tf.int64, name="good_steps",
                             aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
  variables = model.trainable_variables
  # Keras keeps dropout's RNG state out of tf.train.Checkpoint; we save it ourselves.
  rng_state = [v.value for v in model.variables if "seed_generator_state" in v.path]

  options = inputs.InputOptions(shuffle_buffer=config.shuffle_buffer,
                                trim=config.trim_batches and not info.static_shapes,
                                bucket_boundaries=tuple(config.bucket_boundaries))
  train_ds = inputs.train_dataset(config.data_dir, metadata, config.batch_size, config.seed,
                                  options)
  iterator = iter(train_ds)

  checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, input=iterator,
                                   rng=rng_state, loss_scale=[loss_scale, good_steps])
  ckpt_dir = md.checkpoint_dir if info.is_chief else os.path.join(
      md.path, "_workers", f"worker-{info.worker_index}")
  manager = tf.train.CheckpointManager(checkpoint, ckpt_dir, max_to_keep=config.keep_checkpoints,
                                       step_counter=optimizer.iterations)
  best_manager = tf.train.CheckpointManager(
      tf.train.Checkpoint(model=model), md.best_dir if info.is_chief else os.path.join(
          ckpt_dir, "best"), max_to_keep=1, step_counter=optimizer.iterations)

  if manager.latest_checkpoint:
    checkpoint.restore(manager.latest_checkpoint).assert_consumed()
    log.info("Resumed from %s at step %d.", manager.latest_checkpoint,
             int(optimizer.iterations.numpy()))
  elif pretrained is not None:
    from bertline.trainer import checkpoints
    checkpoints.load_pretrained(model, pretrained)  # logs what it loaded

  # --- step functions ---
  accum = config.grad_accum_steps
  global_batch = float(config.batch_size)

  def forward_backward(batch, scale):
    with tf.GradientTape() as tape:
      logits = model(batch, training=True)["logits"]
      loss = tf.reduce_sum(modeling.per_example_loss(batch[schema.LABEL_IDS], logits))
      scaled = loss / global_batch * scale if float16 else loss / global_batch
    grads = tape.gradient(scaled, variables)
    grads = [tf.convert_to_tensor(g) for g in grads]
    if float16:
      grads = [g / scale for g in grads]
    return loss, grads

  if _use_xla(config, static_shapes=info.static_shapes):
    forward_backward = tf.function(forward_backward, jit_compile=True, reduce_retracing=True)

  def replica_step(batch):
    ctx = tf.distribute.get_replica_context()
    per_replica = config.batch_size // ctx.num_replicas_in_sync
    start = ctx.replica_id_in_sync_group * per_replica
    batch = {k: v[start:start + per_replica] for k, v in batch.items()}
    micro = per_replica // accum
    scale = tf.convert_to_tensor(loss_scale)
    if accum == 1:
      loss, grads = forward_backward(batch, scale)
    else:
      loss = tf.constant(0.0)
      grads = [tf.zeros(v.shape, v.dtype) for v in variables]
      for i in tf.range(accum):
        part = {k: v[i * micro:(i + 1) * micro] for k, v in batch.items()}
        part_loss, part_grads = forward_backward(part, scale)
        loss += part_loss
        grads = [g + p for g, p in zip(grads, part_grads)]
    norm = optimizer.apply_gradients(zip(grads, variables), skip_nonfinite=dynamic_scale)
    return loss, norm

  @tf.function
  def train_step(it):
    batch = next(it)
    loss, norm = strategy.run(replica_step, args=(batch,))
    loss = strategy.reduce(tf.distribute.ReduceOp.SUM, loss, axis=None) / global_batch
    norm = strategy.reduce(tf.distribute.ReduceOp.MEAN, norm, axis=None)
    if dynamic_scale:
      finite = tf.math.is_finite(norm)
      good = tf.where(finite, good_steps + 1, 0)
      grow = good >= LOSS_SCALE_GROWTH_STEPS
      loss_scale.assign(tf.where(finite, tf.where(grow, loss_scale * 2.0, loss_scale),
                                 tf.maximum(loss_scale / 2.0, 1.0)))
      good_steps.assign(tf.where(grow, tf.constant(0, tf.int64), good))
    return loss, norm, tf.shape(batch[schema.INPUT_IDS])[1]

  def replica_eval(batch):
    ctx = tf.distribute.get_replica_context()
    per_replica = config.eval_batch_size // ctx.num_replicas_in_sync
    start = ctx.replica_id_in_sync_group * per_replica
    batch = {k: v[start:start + per_replica] for k, v in batch.items()}
    logits = model(batch, training=False)["logits"]
    weights = tf.cast(batch[schema.IS_REAL_EXAMPLE], tf.float32)
    losses = modeling.per_example_loss(batch[schema.LABEL_IDS], logits)
    correct = tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32),
                               batch[schema.LABEL_IDS]), tf.float32)
    return tf.stack([tf.reduce_sum(losses * weights), tf.reduce_sum(correct * weights),
                     tf.reduce_sum(weights)])

  @tf.function
  def eval_step(batch):
    return strategy.reduce(tf.distribute.ReduceOp.SUM, strategy.run(replica_eval, args=(batch,)),
                           axis=None)

  def evaluate(step: int) -> Dict[str, float]:
    totals = None
    ds = inputs.eval_dataset(config.data_dir, metadata, config.eval_batch_size, "dev",
                             trim=not info.static_shapes)
    try:
      for batch in ds:
        out = eval_step(batch).numpy()
        totals = out if totals is None else totals + out
    except tf.errors.DataLossError as e:
      raise inputs.corrupt_shard_error(config.data_dir, metadata, "dev", e) from e
    loss_sum, correct, n = (float(x) for x in totals)
    return {"step": step, "eval_loss": loss_sum / n, "eval_accuracy": correct / n,
            "eval_num_examples": int(n)}

  # --- bookkeeping restored from the model_dir ---
  history = [h for h in md.eval_history() if h["step"] <= int(optimizer.iterations.numpy())]
  best_info = md.best_info() if info.is_chief else None
  best_value = best_info["value"] if best_info else None
  metric = config.early_stopping_metric
  stale = 0
  for h in history:
    stale = 0 if h.get("improved") else stale + 1

  if info.is_chief:
    train_writer = tf.summary.create_file_writer(os.path.join(md.events_dir, "train"))
    eval_writer = tf.summary.create_file_writer(os.path.join(md.events_dir, "eval"))
  else:
    train_writer = eval_writer = tf.summary.create_noop_writer()

  step = int(optimizer.iterations.numpy())
  schedule = optimizer.learning_rate
  last_metrics = history[-1] if history else {}
  best_metrics = best_info["metrics"] if best_info else {}
  stopped_early = preempted = False
  progress = None
  if config.progress and info.is_chief:
    from tqdm import tqdm
    progress = tqdm(total=stop_step, initial=step, desc="train", unit="step",
                    dynamic_ncols=True)

  def save() -> str:
    return manager.save(checkpoint_number=step)

  def eval_and_track() -> bool:
    """Evaluates at `step`; keeps the best; returns whether to stop early."""
    nonlocal best_value, stale, last_metrics, best_metrics
    if not has_dev:
      return False
    metrics = evaluate(step)
    improved = _better(metric, metrics[metric], best_value)
    metrics["improved"] = improved
    if improved:
      best_value, stale, best_metrics = metrics[metric], 0, dict(metrics)
      path = best_manager.save(checkpoint_number=step)
      if info.is_chief:
        md.write_best_info({"step": step, "metric": metric, "value": best_value,
                            "metrics": metrics, "checkpoint": path})
    else:
      stale += 1
    last_metrics = metrics
    if info.is_chief:
      md.append_eval(metrics)
    with eval_writer.as_default(step=step):
      for k in ("eval_loss", "eval_accuracy"):
        _scalar(k, metrics[k])
    log.info("step %d: eval_loss %.4f, eval_accuracy %.4f%s", step, metrics["eval_loss"],
             metrics["eval_accuracy"], " (best)" if improved else "")
    return bool(config.early_stopping_patience) and stale >= config.early_stopping_patience

  good_checkpoint = manager.latest_checkpoint
  examples_per_s = 0.0
  traced, timed_seconds, timed_steps = False, 0.0, 0
  with _Preemption() as preemption:
    window_start, window_examples = time.time(), 0
    while step < stop_step:
      step_start = time.perf_counter()
      try:
        loss, norm, length = train_step(iterator)
      except tf.errors.DataLossError as e:
        raise inputs.corrupt_shard_error(config.data_dir, metadata, "train", e) from e
      loss = float(loss.numpy())
      if traced:
        timed_seconds += time.perf_counter() - step_start
        timed_steps += 1
      traced = True
      if not math.isfinite(loss):
        raise TrainingDiverged(
            f"loss became {loss} at step {step + 1}; stopped without saving it. The last good "
            f"checkpoint is {good_checkpoint or '(none: the run had not saved one)'}. Lower "
            "--learning-rate, keep --clip-norm on, or check the data.")
      if dynamic_scale and int(optimizer.iterations.numpy()) == step:
        log.info("float16 gradients overflowed at step %d: update skipped, loss scale now %g.",
                 step + 1, float(loss_scale.numpy()))
        if float(loss_scale.numpy()) <= 1.0:
          raise TrainingDiverged(
              f"float16 gradients overflow even at loss scale 1 (step {step + 1}). Train with "
              f"--mixed-precision mixed_bfloat16 or without mixed precision; the last good "
              f"checkpoint is {good_checkpoint or '(none)'}.")
        if preemption.requested:
          good_checkpoint = save()
          preempted = True
          break
        continue
      step += 1
      window_examples += config.batch_size
      lr = schedule.numpy(step - 1)
      elapsed = time.time() - window_start
      if elapsed >= 1.0 or step == stop_step:
        examples_per_s = window_examples / max(elapsed, 1e-9)
        window_start, window_examples = time.time(), 0
      if step % config.log_every_steps == 0 or step == stop_step:
        with train_writer.as_default(step=step):
          _scalar("loss", loss)
          _scalar("learning_rate", lr)
          _scalar("examples_per_second", examples_per_s)
          _scalar("gradient_global_norm", float(norm.numpy()))
          _scalar("sequence_length", int(length.numpy()))
      if progress is not None:
        progress.update(1)
        progress.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}", ex_s=f"{examples_per_s:.1f}",
                             refresh=False)
      stop = False
      if step % eval_every == 0 or step == stop_step:
        stop = eval_and_track()
        good_checkpoint = save()
      elif step % config.checkpoint_every_steps == 0:
        good_checkpoint = save()
      if stop:
        stopped_early = True
        log.info("Early stopping at step %d: %s has not improved for %d evaluations (best "
                 "%.4f).", step, metric, stale, best_value)
        break
      if preemption.requested:
        good_checkpoint = save()
        preempted = True
        log.warning("Saved %s; re-run the same command to resume.", good_checkpoint)
        break
    if not (manager.latest_checkpoint or "").endswith(f"-{step}"):
      good_checkpoint = save()
  if progress is not None:
    progress.close()
  train_writer.flush()
  eval_writer.flush()
  if has_dev and not last_metrics and step >= stop_step:
    eval_and_track()
  return TrainResult(
      final_step=step, final_metrics={k: v for k, v in last_metrics.items() if k != "improved"},
      best_metrics={k: v for k, v in best_metrics.items() if k != "improved"},
      latest_checkpoint=manager.latest_checkpoint or "",
      best_checkpoint=best_manager.latest_checkpoint or "", stopped_early=stopped_early,
      preempted=preempted, model_dir=md.path,
      train_examples_per_second=timed_steps * config.batch_size / timed_seconds
      if timed_seconds else 0.0)


# --- the CLI -----------------------------------------------------------------------------
_FLAGS = {
    # flag: (type, help)
    "data_dir": (str, "preprocess output directory (holds metadata.json)"),
    "init_checkpoint": (str, "pretrained model: Google/ALBERT checkpoint, Hugging Face dir, or "
                        "bertline model_dir"),
    "model_dir": (str, "where checkpoints and configs go; re-run with it to resume"),
    "model_config_file": (str, "config for training from random weights (no --init-checkpoint)"),
    "vocab_file": (str, "vocab.txt (default: the one beside --init-checkpoint)"),
    "epochs": (float, "passes over the training set (default 3)"),
    "batch_size": (int, "global batch size per update (default 32)"),
    "eval_batch_size": (int, "global evaluation batch size (default 32)"),
    "learning_rate": (float, "peak learning rate (default 5e-5)"),
    "warmup_proportion": (float, "fraction of steps of linear warmup (default 0.1)"),
    "weight_decay": (float, "AdamWeightDecay rate (default 0.01)"),
    "clip_norm": (float, "global-norm gradient clipping (default 1.0; 0: none)"),
    "max_steps": (int, "stop after this many updates (default 0: after --epochs)"),
    "eval_every_steps": (int, "evaluate and checkpoint every N updates (default: every epoch)"),
    "checkpoint_every_steps": (int, "also checkpoint every N updates (default 1000)"),
    "keep_checkpoints": (int, "rolling checkpoints kept (default 3)"),
    "early_stopping_patience": (int, "stop after N evaluations without improvement (0: never)"),
    "early_stopping_metric": (str, "eval_loss (default) or eval_accuracy; also picks best/"),
    "grad_accum_steps": (int, "micro-batches per update, for big batches on small GPUs"),
    "seed": (int, "seed of new weights, dropout and input order (default 12345)"),
    "strategy": (str, "auto (default), cpu, gpu, mirrored, tpu or multi-worker (TF_CONFIG)"),
    "tpu": (str, "Cloud TPU name ('local' on a TPU VM)"),
    "tpu_zone": (str, "Cloud TPU zone"),
    "gcp_project": (str, "Google Cloud project of the TPU"),
    "loss_scale": (float, "static loss scale for mixed_float16 (default 0: dynamic)"),
    "shuffle_buffer": (int, "training examples in the shuffle buffer (default 10000)"),
    "classifier_dropout": (float, "dropout on the pooled output (default 0.1)"),
    "hidden_dropout": (float, "override the model's hidden and attention dropout"),
}


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog="bertline train",
      description="Fine-tune a BERT/ALBERT classifier on `bertline preprocess` output. "
      "Re-running the same command resumes from the model_dir's last checkpoint. Flags "
      "override --config; defaults are run_classifier.py's.",
      epilog="Example: bertline train --data-dir work/data --init-checkpoint "
      "uncased_L-12_H-768_A-12 --model-dir work/model --epochs 3 --batch-size 32")
  parser.add_argument("--config", help="YAML file of TrainConfig keys (flags override it)")
  for key, (tp, help_) in _FLAGS.items():
    parser.add_argument("--" + key.replace("_", "-"), type=tp, default=None, help=help_)
  parser.add_argument("--mixed-precision", nargs="?", const="auto", default=None,
                      metavar="POLICY", help="mixed precision: mixed_float16 (GPU), "
                      "mixed_bfloat16 (TPU, recent CPUs); the bare flag picks for the device")
  parser.add_argument("--xla", action=argparse.BooleanOptionalAction, default=None,
                      help="XLA-compile the forward and backward pass (default: on for GPUs "
                      "and TPUs, off on CPU where it is slower)")
  parser.add_argument("--trim-batches", action=argparse.BooleanOptionalAction, default=None,
                      help="cut each batch to its longest sequence (default on)")
  parser.add_argument("--bucket-boundaries", default=None,
                      help="comma-separated sequence lengths bounding batching buckets")
  parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                      help="show a progress bar (default on)")
  return parser


def config_from_args(argv: Optional[List[str]]) -> TrainConfig:
  args = build_parser().parse_args(argv)
  data: Dict[str, Any] = {}
  where = "command line"
  if args.config:
    import yaml
    try:
      data = yaml.safe_load(fileio.read_text(args.config)) or {}
    except FileNotFoundError as e:
      raise FileNotFoundError(f"--config {args.config} not found.") from e
    except yaml.YAMLError as e:
      raise ValueError(f"--config {args.config}: not valid YAML: {e}") from e
    if not isinstance(data, dict):
      raise ValueError(f"--config {args.config}: expected a mapping of TrainConfig keys.")
    where = args.config
  for key in list(_FLAGS) + ["xla", "trim_batches", "progress"]:
    value = getattr(args, key)
    if value is not None:
      data[key] = value
  if args.mixed_precision is not None:
    policy = args.mixed_precision
    if policy == "auto":
      import tensorflow as tf
      policy = "mixed_float16" if tf.config.list_logical_devices("GPU") else "mixed_bfloat16"
    data["mixed_precision"] = policy
  if args.bucket_boundaries is not None:
    try:
      data["bucket_boundaries"] = [int(x) for x in args.bucket_boundaries.split(",") if x]
    except ValueError as e:
      raise ValueError(f"--bucket-boundaries {args.bucket_boundaries!r}: expected "
                       "comma-separated integers, e.g. 32,64.") from e
  return configs.from_dict(TrainConfig, data, where)


def main(argv: Optional[List[str]] = None) -> int:
  config = config_from_args(argv)
  result = run(config)
  if result.preempted:
    print(f"train: interrupted at step {result.final_step}; saved {result.latest_checkpoint}. "
          "Re-run the same command to resume.")
    return 143
  metrics = ", ".join(f"{k} {v:.4f}" for k, v in result.final_metrics.items()
                      if k.startswith("eval_") and isinstance(v, float))
  print(f"train: step {result.final_step}{'; stopped early' if result.stopped_early else ''}"
        f"{'; ' + metrics if metrics else ''}; best {result.best_checkpoint or '-'}; "
        f"latest {result.latest_checkpoint}")
  return 0
