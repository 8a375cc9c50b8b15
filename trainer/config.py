"""`bertline train`'s settings: one typed config, validated once, with no TensorFlow import.

The run config's `train:` section (pipeline/config.py) is validated by this
very class, so `bertline train --config` and `bertline run` accept the same
keys and values.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Dict, List, Optional

from bertline import configs

# See trainer/strategy.py for what each one builds.
STRATEGIES = ("auto", "cpu", "gpu", "mirrored", "tpu", "multi-worker")
# "auto": mixed_float16 on GPUs, mixed_bfloat16 elsewhere (TPUs, recent CPUs).
PRECISIONS = ("none", "auto", "mixed_float16", "mixed_bfloat16")
EARLY_STOPPING_METRICS = ("eval_loss", "eval_accuracy")
# Keys the pipeline sets itself for each run (they are not run-config keys).
RUN_KEYS = ("data_dir", "model_dir", "init_checkpoint", "tensorboard_dir", "export",
            "export_dir", "teacher")


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
    mixed_precision: str. none, mixed_float16 (GPUs), mixed_bfloat16 (TPUs, recent
      CPUs) or auto (mixed_float16 on a GPU, else mixed_bfloat16; resolved when
      the run starts, on the machine that trains).
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
    tensorboard_dir: str. Where TensorBoard events go (default <model_dir>/events;
      on Vertex AI, AIP_TENSORBOARD_LOG_DIR).
    export: bool. After training, export the best model (as `bertline export`).
    export_dir: str. Where that export goes, as <export_dir>/<version> (on Vertex
      AI, AIP_MODEL_DIR when not given).
    teacher: str. Distillation (trainer/distill.py): a fine-tuned bertline
      model_dir whose soft targets the model learns from ("" for none).
    student_layers: int. The student's transformer layers, initialised from the
      teacher's (every L/N-th) unless init_checkpoint names a student checkpoint.
    temperature: float. Softmax temperature of the soft targets.
    alpha: float. Weight of the true labels' cross-entropy; 1 - alpha weighs
      the temperature-scaled KL divergence from the teacher.
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
  tensorboard_dir: str = ""
  export: bool = False
  export_dir: str = ""
  teacher: str = ""
  student_layers: int = 0
  temperature: float = 2.0
  alpha: float = 0.5

  def __post_init__(self):
    for field in dataclasses.fields(self):
      value = getattr(self, field.name)
      if isinstance(value, float) and not math.isfinite(value):
        raise configs.ConfigError(f"{field.name} must be a finite number, got {value}.")
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
    configs.choice(self.strategy, STRATEGIES, "strategy")
    configs.choice(self.mixed_precision, PRECISIONS, "mixed_precision")
    if not 0 <= self.classifier_dropout < 1:
      raise configs.ConfigError(
          f"classifier_dropout must be in [0, 1), got {self.classifier_dropout}.")
    if self.temperature <= 0:
      raise configs.ConfigError(f"temperature must be positive, got {self.temperature}.")
    if not 0 <= self.alpha <= 1:
      raise configs.ConfigError(f"alpha must be in [0, 1], got {self.alpha}.")
    if self.student_layers < 0:
      raise configs.ConfigError(f"student_layers must be 0 or more, got {self.student_layers}.")
    if self.student_layers and not self.teacher:
      raise configs.ConfigError("student_layers (--student-layers) needs teacher (--teacher): "
                                "the model_dir to distil from.")
    if self.teacher and not (self.student_layers or self.init_checkpoint):
      raise configs.ConfigError("teacher (--teacher) needs student_layers (--student-layers, "
                                "the student's depth) or init_checkpoint (--student-init, the "
                                "student's starting checkpoint).")

  @classmethod
  def from_dict(cls, data: Dict[str, Any], where: str = "train config") -> "TrainConfig":
    return configs.from_dict(cls, data, where)


def resolve_precision(policy: str, has_gpu: bool) -> str:
  """The Keras policy to train with: `auto` picks per device."""
  if policy == "auto":
    return "mixed_float16" if has_gpu else "mixed_bfloat16"
  return policy
