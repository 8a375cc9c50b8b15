"""`bertline evaluate`'s and `bertline score`'s settings: the one declaration of each.

From these classes come the commands' flags (bertline/flags.py), the run
config's `evaluate:` and `score:` sections (pipeline/config.py extends them
with the pipeline's own keys) and the kfp evaluate and score components'
`*_settings` parameters, checked by the same class again on the worker.
Light on purpose (no TensorFlow, no Beam): `--help` and the pipeline's config
checks stay instant.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar, Dict, List, Optional, Tuple, Union

from bertline import configs, flags, line_shards, schema
from bertline.configs import SettingError, setting
from bertline.evaluator import metrics as metrics_lib
from bertline.evaluator.score_inputs import FORMATS, InputSpec

DEFAULT_BATCH_SIZE = 64  # examples per model call when evaluating, predicting or scoring
COMPRESSIONS = ("none", "gzip")


@dataclasses.dataclass
class EvaluateConfig:
  """Everything an evaluation and its blessing depend on (flags: the same names, with dashes)."""

  # What each pipeline run sets itself: not run-config keys.
  RUN_KEYS: ClassVar[Tuple[str, ...]] = ("model_dir", "data_dir", "baseline_model", "output_dir")

  model_dir: str = setting("", "training model_dir (best checkpoint, else latest) or an "
                           "exported version", required=True)
  data_dir: str = setting("", "`bertline preprocess` output directory", required=True)
  split: str = setting("dev", "split to evaluate")
  thresholds: Dict[str, float] = setting(
      {}, "bless only if METRIC reaches VALUE (a maximum for eval_loss); repeatable, e.g. "
      "--threshold eval_accuracy=0.9. Metrics: " + ", ".join(metrics_lib.SCALAR_METRICS),
      flag="--threshold", metavar="METRIC=VALUE")
  baseline_model: str = setting(
      "", "exported version directory of the model in production; the candidate must not be "
      "worse than it by more than --max-regression")
  max_regression: float = setting(
      0.0, "how much worse than the baseline (absolute) a compared metric may be", minimum=0)
  output_dir: str = setting("", "where metrics.json and blessing.json go (default: --model-dir)")
  checkpoint: str = setting("best", "which checkpoint of --model-dir (best, else latest)",
                            choices=schema.CHECKPOINT_CHOICES)
  batch_size: int = setting(DEFAULT_BATCH_SIZE, "examples per batch", minimum=1)

  def __post_init__(self):
    configs.check_settings(self)
    for name in sorted(self.thresholds):
      if name not in metrics_lib.SCALAR_METRICS:
        raise SettingError("thresholds", f"{{item:{name}}}: unknown metric; choose one of "
                           f"{', '.join(metrics_lib.SCALAR_METRICS)}")


@dataclasses.dataclass
class PredictConfig:
  """`bertline predict`: run_classifier's test_results.tsv for a preprocessed split."""

  model: str = setting("", "training model_dir (best checkpoint, else latest) or an exported "
                       "version directory", required=True)
  data_dir: str = setting("", "`bertline preprocess` output directory", required=True)
  split: str = setting("test", "split to predict")
  output: str = setting("", f"TSV to write (default: <model>/{schema.PREDICTIONS_FILE} for a "
                        f"model_dir, ./{schema.PREDICTIONS_FILE} for an exported version)")
  with_guid: bool = setting(False, "first column: the example's guid")
  with_label: bool = setting(False, "last column: the predicted label's name")
  batch_size: int = setting(DEFAULT_BATCH_SIZE, "examples per batch", minimum=1)

  def __post_init__(self):
    configs.check_settings(self)


@dataclasses.dataclass
class ScoreConfig:
  """A scoring job (`bertline score`), validated once, before any worker starts."""

  RUN_KEYS: ClassVar[Tuple[str, ...]] = ("model", "overwrite")

  model: str = setting("", "an exported version directory, or a push target (its last pushed "
                       "version is used); local or gs://", required=True)
  # A run config may give one pattern as a string; it becomes a list of one.
  input: Union[str, List[str]] = setting([], "a file, glob or gs:// pattern; repeat for more",
                             required=True, repeat=True)
  output: str = setting("", "output directory (local or gs://)", required=True)
  format: str = setting("text", "text: one text per line; tsv: columns by index or header name; "
                        "jsonl: one JSON object per line", choices=FORMATS)
  text_a: str = setting("", "tsv: column index or header name (default 0); jsonl: field "
                        "(default text)")
  text_b: str = setting("", "second text for sentence-pair models (column or field)")
  id: str = setting("", "column or field holding each row's id (default FILE:LINE)")
  header: Optional[bool] = setting(None, "tsv: the first line of each file is a header "
                                   "(default: when a column is named)")
  compression: str = setting("none", "predictions files compression", choices=COMPRESSIONS)
  batch_size: int = setting(DEFAULT_BATCH_SIZE, "rows per model call", minimum=1,
                            below="{key} {value}: must be positive")
  chunk_bytes: int = setting(line_shards.DEFAULT_CHUNK_BYTES, "input bytes per unit of work",
                             minimum=1, below="{key} {value}: must be positive")
  num_shards: int = setting(0, "predictions files (0: one per --chunk-bytes range)", minimum=0,
                            below="{key} {value}: give 0 (one per input range) or more")
  overwrite: bool = setting(False, "replace a finished scoring in --output (refused by default)")
  # Apache Beam's own options (--runner DaskRunner, DataflowRunner ...): on the command line,
  # whatever flags are not score's; each is checked against Beam's options.
  beam_args: List[str] = setting([], "Apache Beam pipeline options", cli=False)

  def __post_init__(self):
    if isinstance(self.input, str):  # one pattern, as a run config usually gives it
      self.input = [self.input] if self.input else []
    configs.check_settings(self)
    self.input_spec  # noqa: B018  Its own checks, named per surface (SettingError).

  @property
  def inputs(self) -> Tuple[str, ...]:
    return tuple(self.input)

  @property
  def input_spec(self) -> InputSpec:
    """How rows are read (score_inputs.InputSpec)."""
    return InputSpec(self.format, self.text_a, self.text_b, self.id, self.header)

  def check(self) -> None:
    """What only a job needs (a run config's score section may leave it out): some input."""
    if not self.input:
      raise ValueError("--input: give at least one file or glob")


# --- The commands' flags, here so that `--help` and a misspelled flag answer without TensorFlow
# (bertline/cli.py parses with these before it imports the stage).

def evaluate_parser() -> flags.ArgumentParser:
  return flags.config_parser(
      EvaluateConfig, "bertline evaluate",
      description="Metrics of a trained model on a preprocessed split (metrics.json) and a "
      "blessing against thresholds and the production model (blessing.json).",
      epilog="example:\n  bertline evaluate --model-dir work/model --data-dir work/data --split dev "
      "--threshold eval_accuracy=0.7")


def predict_parser() -> flags.ArgumentParser:
  return flags.config_parser(
      PredictConfig, "bertline predict",
      description="Class probabilities for every example of a preprocessed split, one line per "
      "example in input order, tab-separated as run_classifier's test_results.tsv.",
      epilog="example:\n  bertline predict --model work/model --data-dir work/data --split test "
      "--output test_results.tsv")


def score_parser() -> flags.ArgumentParser:
  return flags.config_parser(
      ScoreConfig, "bertline score",
      description="Score every row of text files with an exported model on Apache Beam "
      "(RunInference): OUTPUT/predictions-*.jsonl with id, label, probabilities and "
      "model_version per row, OUTPUT/rejected/rows.tsv for rows that cannot be scored, "
      "OUTPUT/summary.json last.\n\nOther options go to Apache Beam, which must declare "
      "them (--runner DaskRunner, --runner DataflowRunner --project P --region R "
      "--temp_location gs://...); a flag neither has is refused.",
      epilog="Examples: bertline score --model registry --input 'new/*.txt' --output scored; "
      "bertline score --model export/3 --input rows.tsv --format tsv --text-a text --id "
      "row_id --output scored")
