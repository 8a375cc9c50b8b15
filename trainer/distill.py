"""Knowledge distillation: a smaller student trained on a fine-tuned teacher's soft targets.

    bertline distill --teacher work/model --student-layers 3 --data-dir work/data \\
        --model-dir work/student [--temperature 2 --alpha 0.5] [every bertline train flag]

DistilBERT's recipe, for classification: the student is the teacher's own
architecture with fewer transformer layers, initialised from the teacher (its
embeddings, pooler and head, and one layer out of every L/N: layers 0, 2, 4
of a 6-layer teacher for 3), or from `--student-init` (any checkpoint
`bertline train --init-checkpoint` reads). It trains through the very same
trainer — resumable, early stopping, best/, every strategy — on

    loss = alpha * CE(labels, student) + (1 - alpha) * T^2 * KL(p_teacher^T || p_student^T)

per example, where p^T = softmax(logits / T) (Hinton et al.; the T^2 keeps the
soft term's gradients at the scale of the hard one's as T grows). The
teacher's logits are computed in the same step, on the same batch, by the
teacher's own classifier loaded from its model_dir (never re-implemented),
in inference mode. Evaluation scores the student alone, with the usual
eval_loss and eval_accuracy, so the result is an ordinary model_dir that
evaluate, predict, export and push take unchanged.

The settings are TrainConfig's `teacher`, `student_layers`, `temperature` and
`alpha` (recorded in train_config.json like every other), so a run config's
train: section can distil too.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, Dict, List, Optional

import tensorflow as tf

from bertline import fileio, schema
from bertline.model import modeling
from bertline.model.model_dir import ModelDir
from bertline.trainer import config as train_config
from bertline.trainer import vertex

log = logging.getLogger("bertline.distill")

_LAYER_PREFIX = "bert/encoder/layer_"


def student_layer_map(teacher_layers: int, student_layers: int) -> List[int]:
  """Which teacher layer each student layer starts from: evenly spaced, the first kept.

  6 -> 3: [0, 2, 4] (DistilBERT's every other layer); 12 -> 4: [0, 3, 6, 9].
  """
  if not 1 <= student_layers <= teacher_layers:
    raise ValueError(f"--student-layers {student_layers}: choose 1 to {teacher_layers} (the "
                     "teacher's number of layers)")
  return [i * teacher_layers // student_layers for i in range(student_layers)]


def student_config(teacher_config, student_layers: int):
  """The teacher's ModelConfig with `student_layers` transformer layers."""
  if getattr(teacher_config, "model_type", "bert") != "bert":
    raise ValueError(f"the teacher is a {teacher_config.model_type} model: distillation from "
                     "its layers needs a BERT teacher; pass --student-init with a checkpoint "
                     "to start the student from instead.")
  student_layer_map(teacher_config.num_hidden_layers, student_layers)  # checks the number
  return dataclasses.replace(teacher_config, num_hidden_layers=student_layers)


def init_from_teacher(student, teacher, layer_map: List[int]) -> int:
  """Copies the teacher's weights into the student: layer k from teacher layer layer_map[k],
  everything else (embeddings, pooler, classifier head) as it is. Returns how many copied.

  Both models' weight_map() name every weight once (Google's TF1 names), so a
  student weight with no teacher counterpart is an error, never a silent gap.
  """
  teacher_weights = teacher.weight_map()
  copied = 0
  for name, variable in student.weight_map().items():
    source = name
    if name.startswith(_LAYER_PREFIX):
      index, rest = name[len(_LAYER_PREFIX):].split("/", 1)
      source = f"{_LAYER_PREFIX}{layer_map[int(index)]}/{rest}"
    if source not in teacher_weights:
      raise ValueError(f"the teacher has no weight {source} for the student's {name}")
    value = teacher_weights[source]
    if tuple(value.shape) != tuple(variable.shape):
      raise ValueError(f"{source} is {tuple(value.shape)} in the teacher, {tuple(variable.shape)}"
                       f" in the student ({name})")
    variable.assign(value)
    copied += 1
  return copied


def distillation_loss(label_ids, student_logits, teacher_logits, temperature: float,
                      alpha: float):
  """Per-example loss [batch]: alpha * CE + (1 - alpha) * T^2 * KL(teacher^T || student^T).

  Args:
    label_ids: int Tensor [batch] or [batch, 1].
    student_logits, teacher_logits: float Tensor [batch, num_labels].
    temperature: float > 0. Softens both distributions.
    alpha: float in [0, 1]. Weight of the true labels' cross-entropy.
  """

  hard = modeling.per_example_loss(label_ids, student_logits)
  t = tf.constant(temperature, tf.float32)
  soft_teacher = tf.nn.softmax(tf.cast(teacher_logits, tf.float32) / t, axis=-1)
  log_student = tf.nn.log_softmax(tf.cast(student_logits, tf.float32) / t, axis=-1)
  log_teacher = tf.nn.log_softmax(tf.cast(teacher_logits, tf.float32) / t, axis=-1)
  kl = tf.reduce_sum(soft_teacher * (log_teacher - log_student), axis=-1)
  return alpha * hard + (1.0 - alpha) * (t * t) * kl


@dataclasses.dataclass
class Teacher:
  """The frozen teacher and the soft-target settings the trainer's step uses."""

  model: Any
  temperature: float
  alpha: float

  def loss(self, batch: Dict[str, Any], student_logits):
    teacher_logits = self.model({k: batch[k] for k in schema.SEQUENCE_FEATURES},
                                training=False)["logits"]
    return distillation_loss(batch[schema.LABEL_IDS], student_logits,
                             teacher_logits, self.temperature, self.alpha)


def teacher_dir(path: str):
  """The teacher's ModelDir; an error naming --teacher when it is not a bertline model_dir."""
  md = ModelDir(path)
  if not fileio.exists(md.file(schema.MODEL_CONFIG_FILE)):
    raise FileNotFoundError(f"--teacher {path} is not a bertline model_dir (no "
                            f"{schema.MODEL_CONFIG_FILE}); pass the --model-dir of a finished "
                            "`bertline train`.")
  return md


def load_teacher(path: str, metadata: schema.DataMetadata, strategy):
  """(ModelDir, classifier) of the teacher, checked against the data; built in `strategy`."""
  md = teacher_dir(path)
  if md.labels() != list(metadata.labels):
    raise ValueError(f"--teacher {path} was trained with labels {md.labels()}, the data has "
                     f"{list(metadata.labels)}: distil on data of the teacher's task.")
  if fileio.sha256_file(md.vocab_file) != metadata.vocab_sha256:
    raise ValueError(f"--teacher {path}'s vocab.txt is not the one the data was tokenized with; "
                     "preprocess the data with the teacher's vocab.")
  with strategy.scope():
    model = md.load_classifier("best")
  model.trainable = False
  return md, model


# --- the CLI -----------------------------------------------------------------------------
# The flags live with the config (trainer/config.py): `--help` answers without TensorFlow.
build_parser = train_config.distill_parser


def main(argv: Optional[List[str]] = None) -> int:
  parser = build_parser()
  config = vertex.apply(train_config.from_command_line(argv, parser))
  if not config.teacher:
    parser.error("--teacher is required: the model_dir of the fine-tuned teacher")
  # The trainer loads TensorFlow: imported once the command line is known to be good (and
  # train imports this module: at the top it would be a cycle).
  from bertline.trainer import train
  return train.report(train.run(config), "distill")
