"""bertline's Python API: each stage as a function, for notebooks and other programs.

The commands are thin shells over these same functions (`bertline train`
parses its flags into a TrainConfig and calls what `bertline.train` calls),
so a stage run from Python writes exactly what the command writes. This is
the top floor: it imports every stage, and `import bertline` loads it only
when one of its names is first used (bertline/__init__.py), so importing
bertline stays free of TensorFlow. docs/python.md shows it end to end.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Union

from bertline import resources, schema
from bertline.evaluator import batch_score, evaluate as evaluate_stage, predict as predict_stage
from bertline.evaluator.config import EvaluateConfig, PredictConfig, ScoreConfig
from bertline.exporter import export as export_stage, push as push_stage
from bertline.exporter.config import ExportConfig, PushConfig
from bertline.exporter.load import Classifier, Prediction
from bertline.pipeline import config as config_lib, local_run
from bertline.pipeline.config import RunConfig
from bertline.preprocessing import beam_job
from bertline.preprocessing.config import PreprocessConfig
from bertline.trainer import train as train_stage
from bertline.trainer.config import TrainConfig

__all__ = ["PreprocessConfig", "TrainConfig", "EvaluateConfig", "PredictConfig", "ExportConfig",
           "PushConfig", "ScoreConfig", "RunConfig", "Classifier", "Prediction", "preprocess",
           "train", "distill", "evaluate", "predict", "export", "push", "score", "run", "load",
           "minilm_dir"]


def minilm_dir() -> str:
  """The packaged pretrained MiniLM-L6-H384-uncased (a Hugging Face directory with vocab.txt)."""
  return resources.minilm_dir()


def preprocess(config: PreprocessConfig) -> schema.DataMetadata:
  """`bertline preprocess`: TSV -> BERT features -> TFRecords; returns the metadata written."""
  return beam_job.run(config)


def train(config: TrainConfig) -> train_stage.TrainResult:
  """`bertline train`: fine-tunes (or resumes) per `config`; returns steps, metrics, checkpoints."""
  return train_stage.run(config)


def distill(config: TrainConfig) -> train_stage.TrainResult:
  """`bertline distill`: `config.teacher` (a model_dir) into `config.student_layers` layers."""
  if not config.teacher or not config.student_layers:
    raise ValueError("distill needs TrainConfig.teacher (the teacher's model_dir) and "
                     "TrainConfig.student_layers (the student's depth)")
  return train_stage.run(config)


def evaluate(config: EvaluateConfig) -> Dict[str, Any]:
  """`bertline evaluate`: writes metrics.json and blessing.json; returns both and their paths."""
  return evaluate_stage.run(config)


def predict(config: PredictConfig) -> str:
  """`bertline predict`: run_classifier's test_results.tsv for a split; returns its path."""
  return predict_stage.run(config)


def export(config: ExportConfig) -> str:
  """`bertline export`: writes <export_dir>/<version>/; returns that path."""
  return export_stage.run(config)


def push(config: PushConfig) -> str:
  """`bertline push`: copies a blessed exported version to <to>/<version>; returns that path."""
  return push_stage.run(config)


def score(config: ScoreConfig) -> Dict[str, Any]:
  """`bertline score`: every row of the inputs through a pushed model on Beam; the summary."""
  return batch_score.run(config)


def run(config: Union[RunConfig, str], overrides: Optional[List[str]] = None,
        work_dir: Optional[str] = None, sentence: Optional[str] = None) -> local_run.RunResult:
  """`bertline run`: the whole pipeline here, from a RunConfig or a run-config YAML path."""
  if isinstance(config, str):
    config = config_lib.load(config, overrides)
  return local_run.run(config, work_dir, sentence=sentence)


def load(path: str) -> Classifier:
  """An exported version, or the last version pushed under a registry, as a callable."""
  return Classifier(path)
