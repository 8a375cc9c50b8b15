"""`bertline preprocess`'s settings: the one declaration of each, its default, check and help.

From this class come the command's flags (bertline/flags.py), the run
config's `data:` section (pipeline/config.py's DataConfig extends it) and the
kfp preprocess component's `preprocess_settings` parameter, validated by this
class again on the worker. No TensorFlow or Beam import: `--help` and the
pipeline's config checks stay instant.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar, List, Tuple

from bertline import configs, line_shards, schema
from bertline.configs import setting

DEFAULT_SPLITS = "train,dev,test"
# What the pipeline sets itself for each run: they are not run-config keys.
RUN_KEYS = ("data_dir", "vocab_file", "output_dir", "overwrite")


@dataclasses.dataclass
class PreprocessConfig:
  """Everything a preprocess run depends on (flags use the same names, with dashes)."""

  RUN_KEYS: ClassVar[Tuple[str, ...]] = RUN_KEYS

  task: str = setting("", "built-in task name (see the list below) [required: --task or "
                      "--task-config]")
  task_config: str = setting("", "YAML file describing a custom TSV task (see examples/tasks/ "
                             "and docs/preprocess.md); replaces --task")
  data_dir: str = setting("", "directory holding the task's TSV files", required=True)
  vocab_file: str = setting("", "BERT vocab.txt of the model to train", required=True)
  do_lower_case: bool = setting(
      True, "lower-case and strip accents (uncased models); --no-do-lower-case for cased and "
      "Chinese-cased models")
  max_seq_length: int = setting(
      128, "tokens per example incl. [CLS]/[SEP]; longer inputs are truncated as "
      "run_classifier does", minimum=3,
      below="{key} {value} is too small: [CLS] and [SEP] need 2 positions (3 for pairs). "
      "Use e.g. 128.")
  output_dir: str = setting("", "where TFRecords and metadata.json go", required=True)
  splits: str = setting(DEFAULT_SPLITS, "comma-separated splits to process (splits the task "
                        "lacks are skipped when left at the default)")
  num_shards: int = setting(
      0, "TFRecord shards per split (0: one per --chunk-bytes range of the input, each written "
      "by one worker)", minimum=0,
      below="{key} {value}: give 0 (one shard per input range) or a positive number of shards "
      "per split.")
  compression: str = setting("none", "TFRecord compression",
                             choices=sorted(schema.COMPRESSION_SUFFIX))
  batch_size: int = setting(
      1024, "texts tokenized per graph call (larger batches amortise the per-call overhead, "
      "measured in benchmarks/preprocess.py)", minimum=1)
  chunk_bytes: int = setting(
      line_shards.DEFAULT_CHUNK_BYTES, "bytes of input per unit of work; the driver cuts files "
      "by size alone, so smaller spreads a small corpus over more workers", minimum=1,
      below="{key} {value}: give a positive size, e.g. 1048576.")
  overwrite: bool = setting(False, "replace a finished output in --output-dir (off: refuse to)")
  # Apache Beam's own options (--runner, --project, ...): on the command line,
  # whatever flags are not preprocess's; each is checked against Beam's options.
  beam_args: List[str] = setting([], "Apache Beam pipeline options", cli=False)

  def __post_init__(self):
    configs.check_settings(self)

  def split_names(self) -> List[str]:
    return [s.strip() for s in self.splits.split(",") if s.strip()]


def from_settings(settings: dict, **run: object) -> PreprocessConfig:
  """The config from a `settings()` dict (a kfp parameter) and the run's paths."""
  return configs.from_settings(PreprocessConfig, settings, "preprocess_settings", **run)
