"""The training loop: one Trainer object with train_step, eval_step and fit.

One training step (one optimizer update):

  next(global batch of `batch_size`, trimmed to its longest sequence)
  -> each replica takes its slice (replica r of n: rows r·B/n .. (r+1)·B/n)
  -> `grad_accum_steps` micro-batches: forward, sum(per-example loss)/B, backward
  -> gradients summed over replicas and workers, clipped, AdamWeightDecay

Every worker reads the same seeded global batches and keeps its own slice, so
the updates are those of one device with the same global batch, whatever the
number of GPUs or workers. Precision and hardware enter only through the
LossScale (float16) and the StrategyInfo (static shapes, the chief): the step
bodies do not branch on them.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import signal
import threading
import time
from typing import Any, Dict

import tensorflow as tf
from tensorflow.core.framework import summary_pb2
from tqdm import tqdm

from bertline import records, schema
from bertline.errors import TrainingDiverged
from bertline.model import modeling
from bertline.model.model_dir import ModelDir
from bertline.trainer import inputs
from bertline.trainer.config import TrainConfig
from bertline.trainer.loss_scale import LossScale
from bertline.trainer.strategy import StrategyInfo
from bertline.trainer.tracking import BestTracker

log = logging.getLogger("bertline.train")


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
    exported: str. The exported version directory, when the run was asked to export.
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
  exported: str = ""


def _scalar(name: str, value: float) -> None:
  """tf.summary.scalar without the tensorboard package (a scalars-plugin summary)."""
  metadata = summary_pb2.SummaryMetadata()
  metadata.plugin_data.plugin_name = "scalars"
  tf.summary.write(name, tf.constant(float(value), tf.float32), metadata=metadata)


class Preemption:
  """Turns SIGTERM (preemption, `kill`) into a flag the loop checks after each step."""

  def __init__(self):
    self.requested = False
    self._previous = None

  def __enter__(self):
    if threading.current_thread() is threading.main_thread():
      self._previous = signal.signal(signal.SIGTERM, self._handle)
    return self

  def _handle(self, signum, frame):
    log.warning("SIGTERM received: saving a checkpoint before exiting.")
    self.requested = True

  def __exit__(self, *exc):
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)


@dataclasses.dataclass
class Schedule:
  """When the loop stops, evaluates and checkpoints (in optimizer updates)."""

  stop_step: int
  eval_every: int
  checkpoint_every: int
  log_every: int


class ClassificationTask:
  """What fine-tuning optimises and measures: the loop's objective, apart from the loop.

  run_classifier's softmax cross-entropy (or, distilling, the teacher's soft
  targets mixed with the labels), and eval_loss / eval_accuracy over every
  example of the dev split, weighted by is_real_example. pretraining/pretrain.py
  gives the same loop masked-LM's objective through the same four methods.

  A multi-label task (multi_label) trains a sigmoid per label with binary
  cross-entropy; its eval_accuracy is the subset accuracy at 0.5 (every label
  of the example right); each label's own threshold is chosen on the dev
  split once training ends (evaluator/thresholds.py).

  Args:
    teacher: distill.Teacher or None.
    multi_label: bool. The data's label_ids are multi-hot vectors.
  """

  eval_split = "dev"

  def __init__(self, teacher=None, multi_label: bool = False):
    self.teacher = teacher
    self.multi_label = multi_label
    self._loss = modeling.per_example_sigmoid_loss if multi_label else modeling.per_example_loss

  def losses(self, model, batch) -> tf.Tensor:
    """Per-example losses [batch] of a training (micro-)batch: the loop sums them and divides
    by the global batch size."""
    logits = model(batch, training=True)["logits"]
    if self.teacher is not None:
      return self.teacher.loss(batch, logits)
    return self._loss(batch[schema.LABEL_IDS], logits)

  def eval_sums(self, model, batch) -> tf.Tensor:
    """[sum of weighted losses, weighted correct, real examples] of one replica's eval batch."""
    logits = model(batch, training=False)["logits"]
    weights = tf.cast(batch[schema.IS_REAL_EXAMPLE], tf.float32)
    losses = self._loss(batch[schema.LABEL_IDS], logits)
    if self.multi_label:
      right = tf.equal(tf.cast(logits > 0, tf.int32), batch[schema.LABEL_IDS])
      correct = tf.cast(tf.reduce_all(right, axis=-1), tf.float32)
    else:
      correct = tf.cast(tf.equal(tf.argmax(logits, -1, output_type=tf.int32),
                                 batch[schema.LABEL_IDS]), tf.float32)
    return tf.stack([tf.reduce_sum(losses * weights), tf.reduce_sum(correct * weights),
                     tf.reduce_sum(weights)])

  @staticmethod
  def metrics(totals) -> Dict[str, Any]:
    loss_sum, correct, n = (float(x) for x in totals)
    return {"eval_loss": loss_sum / n, "eval_accuracy": correct / n,
            "eval_num_examples": int(n)}

  def eval_dataset(self, config: TrainConfig, metadata, trim: bool) -> tf.data.Dataset:
    return inputs.eval_dataset(config.data_dir, metadata, config.eval_batch_size,
                               self.eval_split, trim=trim)


class Trainer:
  """Runs the training loop of one model over one strategy.

  Args:
    config: TrainConfig.
    info: StrategyInfo (the strategy, whether this process is the chief).
    model: BertClassifier, built in the strategy's scope.
    optimizer: the optimizer, built for model.trainable_variables.
    loss_scale: LossScale.
    metadata: schema.DataMetadata of config.data_dir.
    md: ModelDir being written.
    manager: CheckpointManager of the rolling checkpoints (restored already).
    best_manager: CheckpointManager of best/.
    iterator: the training input iterator (its position is in the checkpoint).
    xla: bool. XLA-compile each replica's forward and backward pass.
    task: what is optimised and measured (ClassificationTask by default; with a
      distill.Teacher, the teacher's soft targets mixed with the labels).
  """

  def __init__(self, config: TrainConfig, info: StrategyInfo, model, optimizer,
               loss_scale: LossScale, metadata, md: ModelDir,
               manager: tf.train.CheckpointManager, best_manager: tf.train.CheckpointManager,
               iterator, xla: bool, task=None):
    self.config = config
    self.info = info
    self.strategy = info.strategy
    self.model = model
    self.optimizer = optimizer
    self.loss_scale = loss_scale
    self.metadata = metadata
    self.md = md
    self.manager = manager
    self.best_manager = best_manager
    self.iterator = iterator
    self.task = task if task is not None else ClassificationTask()
    self.variables = model.trainable_variables
    self.global_batch = float(config.batch_size)
    self._forward_backward = (tf.function(self.forward_backward, jit_compile=True,
                                          reduce_retracing=True)
                              if xla else self.forward_backward)
    self.train_step = tf.function(self._train_step)
    # Eval batches come as tensors of each batch's own length (trimmed): without
    # reduce_retracing every new length traced the model again (~1 s each, and
    # TensorFlow's retracing warning in every evaluation).
    self.eval_step = tf.function(self._eval_step, reduce_retracing=True)

  # --- step functions ------------------------------------------------------------------
  def forward_backward(self, batch, scale):
    """Summed loss and gradients of sum(loss)/global_batch over one (micro-)batch."""
    with tf.GradientTape() as tape:
      loss = tf.reduce_sum(self.task.losses(self.model, batch))
      scaled = self.loss_scale.scaled(loss / self.global_batch, scale)
    grads = tape.gradient(scaled, self.variables)
    grads = [tf.convert_to_tensor(g) for g in grads]
    return loss, self.loss_scale.unscaled(grads, scale)

  def _replica_slice(self, batch, global_size: int):
    ctx = tf.distribute.get_replica_context()
    per_replica = global_size // ctx.num_replicas_in_sync
    start = ctx.replica_id_in_sync_group * per_replica
    return {k: v[start:start + per_replica] for k, v in batch.items()}, per_replica

  def _replica_step(self, batch):
    batch, per_replica = self._replica_slice(batch, self.config.batch_size)
    accum = self.config.grad_accum_steps
    micro = per_replica // accum
    scale = tf.convert_to_tensor(self.loss_scale.scale)
    if accum == 1:
      loss, grads = self._forward_backward(batch, scale)
    else:
      loss = tf.constant(0.0)
      grads = [tf.zeros(v.shape, v.dtype) for v in self.variables]
      for i in tf.range(accum):
        part = {k: v[i * micro:(i + 1) * micro] for k, v in batch.items()}
        part_loss, part_grads = self._forward_backward(part, scale)
        loss += part_loss
        grads = [g + p for g, p in zip(grads, part_grads)]
    norm = self.optimizer.apply_gradients(zip(grads, self.variables),
                                          skip_nonfinite=self.loss_scale.dynamic)
    return loss, norm

  def _train_step(self, iterator):
    """One update: (mean loss, gradient global norm, the batch's sequence length)."""
    batch = next(iterator)
    loss, norm = self.strategy.run(self._replica_step, args=(batch,))
    loss = self.strategy.reduce(tf.distribute.ReduceOp.SUM, loss, axis=None) / self.global_batch
    norm = self.strategy.reduce(tf.distribute.ReduceOp.MEAN, norm, axis=None)
    self.loss_scale.update(norm)
    return loss, norm, tf.shape(batch[schema.INPUT_IDS])[1]

  def _replica_eval(self, batch):
    batch, _ = self._replica_slice(batch, self.config.eval_batch_size)
    return self.task.eval_sums(self.model, batch)

  def _eval_step(self, batch):
    """The task's evaluation sums over one global batch."""
    return self.strategy.reduce(tf.distribute.ReduceOp.SUM,
                                self.strategy.run(self._replica_eval, args=(batch,)), axis=None)

  def evaluate(self, step: int) -> Dict[str, Any]:
    """The task's metrics (eval_loss, eval_accuracy, ...) over every example of its split."""
    c = self.config
    totals = None
    ds = self.task.eval_dataset(c, self.metadata, trim=not self.info.static_shapes)
    try:
      for batch in ds:
        out = self.eval_step(batch).numpy()
        totals = out if totals is None else totals + out
    except tf.errors.DataLossError as e:
      raise records.corrupt_shard_error(c.data_dir, self.metadata, self.task.eval_split,
                                        e) from e
    return {"step": step, **self.task.metrics(totals)}

  # --- the loop ------------------------------------------------------------------------
  def fit(self, schedule: Schedule) -> TrainResult:
    """Trains from the optimizer's current step to schedule.stop_step (or an early stop).

    Each update is three actions, in this order (orbit's Controller shape):
    the step (`_step`: one update, checked), its reports (`_report`: logs,
    TensorBoard, the progress bar) and the checkpoint actions (`_after_step`:
    evaluate and keep the best, save, stop early or on SIGTERM).
    """
    run = self._begin(schedule)
    with Preemption() as preemption:
      while run.step < schedule.stop_step:
        update = self._step(run)
        if update is None:  # float16 overflow: the update was skipped, the step not counted
          if preemption.requested:
            run.good_checkpoint = self._save(run)
            run.preempted = True
            break
          continue
        run.step += 1
        self._report(run, schedule, *update)
        if self._after_step(run, schedule, preemption):
          break
      if not (self.manager.latest_checkpoint or "").endswith(f"-{run.step}"):
        run.good_checkpoint = self._save(run)
    run.close()
    if run.has_dev and not run.tracker.last_metrics and run.step >= schedule.stop_step:
      self._evaluate_and_track(run)
    return self._result(run)

  def _begin(self, schedule: Schedule) -> "_Run":
    """The state one fit() carries from step to step, restored from the model_dir."""
    c, md, info = self.config, self.md, self.info
    step = int(self.optimizer.iterations.numpy())
    history = [h for h in md.eval_history() if h["step"] <= step]
    best_info = md.best_info() if info.is_chief else None
    tracker = BestTracker(c.early_stopping_metric, c.early_stopping_patience,
                          best_info["value"] if best_info else None,
                          best_info["metrics"] if best_info else None, history)
    if info.is_chief:
      events = c.tensorboard_dir or md.events_dir
      train_writer = tf.summary.create_file_writer(os.path.join(events, "train"))
      eval_writer = tf.summary.create_file_writer(os.path.join(events, "eval"))
    else:
      train_writer = eval_writer = tf.summary.create_noop_writer()
    progress = None
    if c.progress and info.is_chief:
      progress = tqdm(total=schedule.stop_step, initial=step, desc="train", unit="step",
                      dynamic_ncols=True)
    return _Run(step=step, has_dev=self.task.eval_split in self.metadata.splits, tracker=tracker,
                train_writer=train_writer, eval_writer=eval_writer, progress=progress,
                good_checkpoint=self.manager.latest_checkpoint)

  def _save(self, run: "_Run") -> str:
    return self.manager.save(checkpoint_number=run.step)

  def _step(self, run: "_Run"):
    """One update: (loss, gradient norm, sequence length), or None when float16 skipped it.

    Raises TrainingDiverged, naming the last good checkpoint, when the loss is
    not finite or float16 overflows even at loss scale 1.
    """
    step_start = time.perf_counter()
    try:
      loss, norm, length = self.train_step(self.iterator)
    except tf.errors.DataLossError as e:
      raise records.corrupt_shard_error(self.config.data_dir, self.metadata, "train", e) from e
    loss = float(loss.numpy())
    if run.traced:  # the first step traces: its time is not the step's
      run.timed_seconds += time.perf_counter() - step_start
      run.timed_steps += 1
    run.traced = True
    if not math.isfinite(loss):
      raise TrainingDiverged(
          f"loss became {loss} at step {run.step + 1}; stopped without saving it. The last good "
          f"checkpoint is {run.good_checkpoint or '(none: the run had not saved one)'}. Lower "
          "--learning-rate, keep --clip-norm on, or check the data.")
    if self.loss_scale.skipped_update(run.step, self.optimizer.iterations):
      if self.loss_scale.exhausted:
        raise TrainingDiverged(
            f"float16 gradients overflow even at loss scale 1 (step {run.step + 1}). Train with "
            f"--mixed-precision mixed_bfloat16 or without mixed precision; the last good "
            f"checkpoint is {run.good_checkpoint or '(none)'}.")
      return None
    return loss, norm, length

  def _report(self, run: "_Run", schedule: Schedule, loss: float, norm, length) -> None:
    """The loss, always visible: TensorBoard every log_every steps, the progress bar every step."""
    step = run.step
    run.window_examples += self.config.batch_size
    lr = self.optimizer.learning_rate.numpy(step - 1)
    elapsed = time.time() - run.window_start
    if elapsed >= 1.0 or step == schedule.stop_step:
      run.examples_per_s = run.window_examples / max(elapsed, 1e-9)
      run.window_start, run.window_examples = time.time(), 0
    if step % schedule.log_every == 0 or step == schedule.stop_step:
      with run.train_writer.as_default(step=step):
        _scalar("loss", loss)
        _scalar("learning_rate", lr)
        _scalar("examples_per_second", run.examples_per_s)
        _scalar("gradient_global_norm", float(norm.numpy()))
        _scalar("sequence_length", int(length.numpy()))
    if run.progress is not None:
      run.progress.update(1)
      run.progress.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.2e}",
                               ex_s=f"{run.examples_per_s:.1f}", refresh=False)

  def _after_step(self, run: "_Run", schedule: Schedule, preemption: "Preemption") -> bool:
    """Evaluate, save, stop early or on SIGTERM, as the schedule says; True ends the run."""
    step, stop = run.step, False
    if step % schedule.eval_every == 0 or step == schedule.stop_step:
      stop = self._evaluate_and_track(run)
      run.good_checkpoint = self._save(run)
    elif step % schedule.checkpoint_every == 0:
      run.good_checkpoint = self._save(run)
    if stop:
      run.stopped_early = True
      log.info("Early stopping at step %d: %s has not improved for %d evaluations (best "
               "%.4f).", step, run.tracker.metric, run.tracker.stale, run.tracker.best_value)
      return True
    if preemption.requested:
      run.good_checkpoint = self._save(run)
      run.preempted = True
      log.warning("Saved %s; re-run the same command to resume.", run.good_checkpoint)
      return True
    return False

  def _evaluate_and_track(self, run: "_Run") -> bool:
    """Evaluates at the run's step; keeps the best; returns whether to stop early."""
    if not run.has_dev:
      return False
    step, tracker = run.step, run.tracker
    metrics = self.evaluate(step)
    improved = tracker.update(metrics)
    if improved:
      path = self.best_manager.save(checkpoint_number=step)
      if self.info.is_chief:
        self.md.write_best_info({"step": step, "metric": tracker.metric,
                                 "value": tracker.best_value, "metrics": metrics,
                                 "checkpoint": path})
    if self.info.is_chief:
      self.md.append_eval(metrics)
    shown = {k: v for k, v in metrics.items() if k.startswith("eval_") and isinstance(v, float)}
    with run.eval_writer.as_default(step=step):
      for k, v in shown.items():
        _scalar(k, v)
    log.info("step %d: %s%s", step, ", ".join(f"{k} {v:.4f}" for k, v in shown.items()),
             " (best)" if improved else "")
    return tracker.should_stop

  def _result(self, run: "_Run") -> TrainResult:
    def public(metrics):
      return {k: v for k, v in metrics.items() if k != "improved"}
    return TrainResult(
        final_step=run.step, final_metrics=public(run.tracker.last_metrics),
        best_metrics=public(run.tracker.best_metrics),
        latest_checkpoint=self.manager.latest_checkpoint or "",
        best_checkpoint=self.best_manager.latest_checkpoint or "",
        stopped_early=run.stopped_early, preempted=run.preempted, model_dir=self.md.path,
        train_examples_per_second=run.timed_steps * self.config.batch_size / run.timed_seconds
        if run.timed_seconds else 0.0)


@dataclasses.dataclass
class _Run:
  """What one Trainer.fit carries from step to step."""

  step: int
  has_dev: bool
  tracker: BestTracker
  train_writer: Any
  eval_writer: Any
  progress: Any
  good_checkpoint: str  # the last checkpoint saved: what a diverged run names
  stopped_early: bool = False
  preempted: bool = False
  examples_per_s: float = 0.0
  window_start: float = dataclasses.field(default_factory=time.time)
  window_examples: int = 0
  traced: bool = False
  timed_seconds: float = 0.0
  timed_steps: int = 0

  def close(self) -> None:
    if self.progress is not None:
      self.progress.close()
    self.train_writer.flush()
    self.eval_writer.flush()
