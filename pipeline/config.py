"""One YAML config for a whole run: data, model, train, evaluate, push, pipeline, schedule.

The same file drives `bertline run` (everything on this machine), `bertline
compile`, `bertline submit` and `bertline schedule`. Its keys are the stages'
CLI flags (snake_case): `train.learning_rate` becomes `bertline train
--learning-rate`. Every error names the file, the key, the bad value and what
would be valid, and is raised before any work starts:

  config = load("examples/demo_tweets.yaml", overrides=["train.max_steps=50"])

A data path may hold a `{date}` (or `{{date}}`) placeholder: scheduled runs
read data under a dated prefix, so a cached result of last week's data is
never reused.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
from typing import Any, Dict, List, Optional, Tuple

import yaml

from bertline import configs, fileio, flags, resources
from bertline.configs import ConfigError, setting
from bertline.evaluator.config import EvaluateConfig, ScoreConfig
from bertline.exporter.config import ExportConfig, PushConfig
from bertline.model import model_config
from bertline.preprocessing.config import PreprocessConfig
from bertline.pretraining.config import PRETRAIN_SKIPPED, PretrainDataConfig
from bertline.resources import MINILM
from bertline.trainer import config as train_config_lib

DEFAULT_IMAGE = "bertline:0.1.0"
BUILTIN_DATA = ("tweets", "chnsenticorp")
# Vertex AI accelerator names, plus the Kubernetes resource name Kubeflow uses.
GPU_TYPES = ("NVIDIA_TESLA_T4", "NVIDIA_L4", "NVIDIA_TESLA_V100", "NVIDIA_TESLA_P100",
             "NVIDIA_TESLA_A100", "NVIDIA_A100_80GB", "NVIDIA_H100_80GB", "NVIDIA_H100_MEGA_80GB",
             "NVIDIA_H200_141GB", "nvidia.com/gpu")
TPU_TYPES = ("TPU_V2", "TPU_V3", "TPU_V5_LITEPOD")
ACCELERATOR_TYPES = ("",) + GPU_TYPES + TPU_TYPES
BASELINES = ("", "last_pushed")
# The train section's one key that is the pipeline's, not the trainer's: start
# from the model_dir of the last pushed model (recorded in its export
# metadata) instead of model.init_checkpoint.
WARM_START = "warm_start"


@dataclasses.dataclass
class DataConfig(PreprocessConfig):
  """Where the TSV corpus is, and how to preprocess it: `bertline preprocess`'s own settings.

  Every setting of PreprocessConfig (preprocessing/config.py) is a key here,
  declared, defaulted and checked there once — task, task_config,
  max_seq_length, do_lower_case, splits, num_shards, compression,
  batch_size, chunk_bytes, beam_args — but for the paths the pipeline sets
  for each run (data_dir, vocab_file, output_dir, overwrite). Plus where the
  corpus comes from:

  Attributes:
    path: str. Directory of the task's TSV files (local or gs://); may hold
      `{date}`, replaced by the run's date (YYYY-MM-DD).
    builtin: str. "tweets" or "chnsenticorp": write the packaged real corpus
      under the work dir instead of reading `path`.
    limit: int. Rows of the builtin corpus to keep (0: all).
  """

  path: str = setting("", "directory of the task's TSV files (local or gs://), may hold {date}",
                      cli=False)
  builtin: str = setting("", "a packaged real corpus instead of path",
                         choices=("",) + BUILTIN_DATA, cli=False)
  limit: int = setting(0, "rows of the builtin corpus to keep (0: all)", minimum=0, cli=False)

  def preprocess_settings(self) -> Dict[str, Any]:
    """PreprocessConfig's settings of this run: the kfp preprocess component's one parameter.

    As every section's (changed_settings), but task and task_config: the
    resolve-data step decides them (a builtin corpus brings its own) and hands
    them to preprocess.
    """
    return {k: v for k, v in changed_settings(self, PreprocessConfig).items()
            if k not in ("task", "task_config")}


@dataclasses.dataclass
class ModelConfig:
  """The checkpoint to fine-tune.

  Attributes:
    init_checkpoint: str. Google TF1/ALBERT checkpoint, Hugging Face dir or
      bertline model_dir; "builtin:minilm" is the packaged pretrained MiniLM.
    vocab_file: str. vocab.txt (default: the one beside init_checkpoint).
  """

  init_checkpoint: str = MINILM
  vocab_file: str = ""


@dataclasses.dataclass
class EvaluateSection(EvaluateConfig):
  """`bertline evaluate`'s settings (evaluator/config.py: split, thresholds, max_regression,
  checkpoint, batch_size), less the paths each run sets, plus the pipeline's baseline.

  Attributes:
    baseline: str. "last_pushed": the candidate must not be worse than the
      newest model under push.to (by more than max_regression); "" for
      thresholds only.
  """

  baseline: str = setting("", "the model the candidate is compared with", choices=BASELINES,
                          cli=False)


@dataclasses.dataclass
class PushSection(PushConfig):
  """`bertline push`'s settings (exporter/config.py: to, force, check_serving, vertex_model,
  vertex_project, vertex_region, ...), less the paths each run sets; push.to defaults to a
  local registry/ folder."""

  to: str = setting("registry", "the registry: gs://bucket/models/NAME or a directory", cli=False)


@dataclasses.dataclass
class PretrainSection(PretrainDataConfig):
  """Domain-adaptive pre-training before fine-tuning: `bertline pretrain-data`'s settings
  (pretraining/config.py: max_seq_length, masking, pairs, dupe_factor, ...), less what each run
  sets (the paths, and do_lower_case: data.do_lower_case), plus which text and how to pre-train.

  With text to read (input, or labeled_texts), two steps run before train: pretrain-data, then
  pretrain (masked LM from model.init_checkpoint), and train fine-tunes the pre-trained model.
  Both are cached by their inputs like every step.

  Attributes:
    input: list of str. Unlabeled text: local paths, globs or gs:// patterns, in
      input_format (none: only the labeled texts).
    labeled_texts: bool. Also the labeled corpus's train split, labels dropped (dev and test
      stay out of the pre-training corpus, so the evaluation never saw their texts).
    train: dict. `bertline pretrain`'s settings: TrainConfig keys (max_steps, learning_rate,
      batch_size, ...), less the classifier's; unset ones keep the trainer's defaults.
  """

  input: List[str] = setting([], "unlabeled text: local paths, globs or gs:// patterns",
                             cli=False)
  labeled_texts: bool = setting(False, "also the labeled corpus's train-split texts, labels "
                                "dropped", cli=False)
  train: Dict[str, Any] = setting({}, "bertline pretrain's settings (TrainConfig keys)",
                                  cli=False)

  @property
  def enabled(self) -> bool:
    return bool(self.input or self.labeled_texts)

  def data_settings(self) -> Dict[str, Any]:
    """PretrainDataConfig's settings of this run but the casing (the pretrain-data step's
    parameter); the input travels alone, to be fingerprinted by resolve-data."""
    return {k: v for k, v in changed_settings(self, PretrainDataConfig).items() if k != "input"}

  def train_settings(self) -> Dict[str, Any]:
    return dict(sorted(self.train.items()))


@dataclasses.dataclass
class StepResources:
  """What one pipeline task asks of the cluster.

  Attributes:
    cpu: str. CPU request and limit ("4", "500m").
    memory: str. Memory request and limit ("16G").
    accelerator_type: str. A GPU (NVIDIA_TESLA_T4, ..., or nvidia.com/gpu on
      Kubeflow) or TPU type; "" for none.
    accelerator_count: int. How many.
    retries: int. Retries of a failed or preempted task.
  """

  cpu: str = "2"
  memory: str = "8G"
  accelerator_type: str = ""
  accelerator_count: int = 0
  retries: int = 0


def _train_resources() -> StepResources:
  # Training is the step worth a GPU, and the one that runs on preemptible
  # capacity: it resumes from its model_dir, so a retry loses little.
  return StepResources(cpu="8", memory="32G", accelerator_type="NVIDIA_TESLA_T4",
                       accelerator_count=1, retries=3)


@dataclasses.dataclass
class PipelineConfig:
  """How the Kubeflow pipeline runs.

  Attributes:
    name: str. Pipeline name (Kubeflow / Vertex display name).
    image: str. The bertline image every component runs in (see Dockerfile).
    pipeline_root: str. Where Kubeflow/Vertex keep artifacts (gs://bucket/root).
    work_dir: str. `bertline run`'s local working directory.
    caching: bool. Reuse a step's result when its inputs are unchanged.
    preprocess, train, evaluate, push, score: StepResources of each task.
  """

  name: str = "bertline"
  image: str = DEFAULT_IMAGE
  pipeline_root: str = ""
  work_dir: str = "runs/bertline"
  caching: bool = True
  preprocess: StepResources = dataclasses.field(default_factory=StepResources)
  train: StepResources = dataclasses.field(default_factory=_train_resources)
  evaluate: StepResources = dataclasses.field(default_factory=StepResources)
  push: StepResources = dataclasses.field(default_factory=lambda: StepResources(cpu="1", memory="4G"))
  score: StepResources = dataclasses.field(default_factory=StepResources)


@dataclasses.dataclass
class ScheduleConfig:
  """Recurring retraining.

  Attributes:
    cron: str. Five fields, Vertex's form ("0 3 * * 1"), optionally
      "TZ=Europe/Paris 0 3 * * 1".
    max_concurrency: int. Runs allowed at once.
  """

  cron: str = ""
  max_concurrency: int = 1


# The run config's sections that are a stage's own config: section -> the stage's class.
STAGE_SECTIONS = {"data": PreprocessConfig, "pretrain": PretrainDataConfig,
                  "evaluate": EvaluateConfig, "export": ExportConfig, "push": PushConfig,
                  "score": ScoreConfig}


@dataclasses.dataclass
class RunConfig:
  """The whole run.

  Attributes:
    train: dict. `bertline train`'s settings: keys of the trainer's own
      TrainConfig (trainer/config.py), validated by it, unset ones keeping its
      defaults; plus `warm_start` (bool, the pipeline's).
    distill: dict. Empty: no distillation. Otherwise a `distill` step runs
      after train (`bertline distill` with the trained model as teacher) and
      the student is what is evaluated, blessed and pushed: student_layers
      (required), temperature, alpha, and any train key to set differently for
      the student (the train section's values are the defaults).
  """

  data: DataConfig = dataclasses.field(default_factory=DataConfig)
  model: ModelConfig = dataclasses.field(default_factory=ModelConfig)
  pretrain: PretrainSection = dataclasses.field(default_factory=PretrainSection)
  train: Dict[str, Any] = dataclasses.field(default_factory=dict)
  distill: Dict[str, Any] = dataclasses.field(default_factory=dict)
  evaluate: EvaluateSection = dataclasses.field(default_factory=EvaluateSection)
  export: ExportConfig = dataclasses.field(default_factory=ExportConfig)
  push: PushSection = dataclasses.field(default_factory=PushSection)
  score: ScoreConfig = dataclasses.field(default_factory=ScoreConfig)
  pipeline: PipelineConfig = dataclasses.field(default_factory=PipelineConfig)
  schedule: ScheduleConfig = dataclasses.field(default_factory=ScheduleConfig)

  def to_dict(self) -> Dict[str, Any]:
    """The run config as a YAML file would hold it (without the paths each run sets)."""
    data = configs.to_dict(self)
    for section in STAGE_SECTIONS:
      for key in type(getattr(self, section)).RUN_KEYS:
        del data[section][key]
    return data

  def stage_settings(self, section: str) -> Dict[str, Any]:
    """One section's settings of its stage's own config class: a kfp component's parameter.

    Only what differs from the stage's defaults (changed_settings), so the
    compiled pipeline's defaults stay small and stable; the component builds
    the class from them on the worker, where the same code checks them.
    """
    return changed_settings(getattr(self, section), STAGE_SECTIONS[section])

  @property
  def warm_start(self) -> bool:
    return bool(self.train.get(WARM_START, False))

  def train_settings(self) -> Dict[str, Any]:
    """The trainer's settings of this run (TrainConfig keys), sorted; the rest are its defaults."""
    return {k: v for k, v in sorted(self.train.items()) if k != WARM_START}

  def distill_settings(self) -> Dict[str, Any]:
    """The student's settings: the train section's, then the distill section's ({} for none)."""
    if not self.distill:
      return {}
    return dict(sorted({**self.train_settings(), **self.distill}.items()))


def changed_settings(section: Any, stage: type) -> Dict[str, Any]:
  """A section's settings of its stage's class `stage` that differ from the class's defaults.

  Only the stage's own keys (not the pipeline's, such as evaluate.baseline)
  and not the paths each run sets (RUN_KEYS); sorted. What is left out keeps
  its default on the worker.
  """
  defaults = configs.settings_of(stage)
  keys = {f.name for f in dataclasses.fields(stage)} - set(stage.RUN_KEYS)
  return {k: v for k, v in sorted(configs.run_settings(section).items())
          if k in keys and v != defaults[k]}


def check_train_section(train: Dict[str, Any], where: str, section: str = "train",
                        run_keys: Optional[Dict[str, Any]] = None, skipped: Tuple[str, ...] = (),
                        warm_ok: bool = True) -> train_config_lib.TrainConfig:
  """Validates the train section with the trainer's own TrainConfig; returns it (paths unset).

  The keys are TrainConfig's, less the paths each step sets (RUN_KEYS), plus
  warm_start; values are checked by TrainConfig itself, so a run config and
  `bertline train --config` accept exactly the same settings. `skipped` are
  TrainConfig keys this section has no use for (pretrain's: the classifier's).
  """
  settings = dict(train)
  warm_start = settings.pop(WARM_START, False)
  if not isinstance(warm_start, bool):
    raise ConfigError(f"{where}.{section}.{WARM_START}: expected true or false, got {warm_start!r}")
  fields = {f.name for f in dataclasses.fields(train_config_lib.TrainConfig)} - set(skipped)
  valid = sorted((fields - set(train_config_lib.RUN_KEYS)) | ({WARM_START} if warm_ok else set()))
  if warm_start and not warm_ok:
    raise ConfigError(f"{where}.{section}.{WARM_START}: a train key only (pre-training starts "
                      "from model.init_checkpoint)")
  for key in sorted(settings):
    if key in train_config_lib.RUN_KEYS:
      raise ConfigError(f"{where}.{section}.{key}: the pipeline sets it for each run; remove it"
                        + (" and set model.init_checkpoint" if key == "init_checkpoint" else ""))
    if key in skipped:
      raise ConfigError(f"{where}.{section}.{key}: `bertline pretrain` has no use for it (no "
                        "classifier, export or teacher); remove it")
    if key not in fields:
      raise ConfigError(f"{where}.{section}: unknown key {key!r}; valid keys are: {', '.join(valid)}")
  try:
    return configs.from_dict(train_config_lib.TrainConfig, {**settings, **(run_keys or {})},
                             f"{where}.{section}")
  except ConfigError as e:
    message = str(e)
    if message.startswith(f"{where}.{section}"):
      raise
    # TrainConfig's own checks start with the key: "batch_size must be at least 1, ...".
    key = message.split(" ", 1)[0].rstrip(":")
    raise ConfigError(f"{where}.{section}.{message}" if key in fields
                      else f"{where}.{section}: {message}") from e


def validate(config: RunConfig, where: str = "config") -> RunConfig:
  """Checks what spans sections (each section's own class checked its own keys); returns `config`."""
  _check_data_and_model(config, where)
  train = check_train_section(config.train, where)
  _check_pretrain(config, where)
  _check_distill(config, where)
  _check_evaluate_and_push(config, where)
  _check_sequence_length(config, where)
  _check_resources(config, train, where)
  return config


def _check_data_and_model(config: RunConfig, where: str) -> None:
  d = config.data
  if not d.builtin and not d.path:
    raise ConfigError(f"{where}: data.path is missing: set it to the directory of your TSV files "
                      f"(local or gs://), or set data.builtin to one of {', '.join(BUILTIN_DATA)}")
  if not d.builtin and not (d.task or d.task_config):
    raise ConfigError(f"{where}: data.task or data.task_config is missing: name a built-in task "
                      "(mrpc, cola, ...) or a task YAML (see examples/tasks/)")
  if not config.model.init_checkpoint:
    raise ConfigError(f"{where}: model.init_checkpoint is missing: a checkpoint to fine-tune, or "
                      f"{MINILM!r}")


def _check_pretrain(config: RunConfig, where: str) -> None:
  p = config.pretrain
  if not p.enabled:
    if p.train:
      raise ConfigError(f"{where}.pretrain: train settings but no text to pre-train on: set "
                        "pretrain.input (paths or globs of unlabeled text) and/or "
                        "pretrain.labeled_texts: true, or remove the section")
    return
  for i, pattern in enumerate(p.input):
    if not pattern.strip():
      raise ConfigError(f"{where}.pretrain.input[{i}] is empty: give a path, glob or gs:// "
                        "pattern of unlabeled text")
  check_train_section(p.train, where, section="pretrain.train", skipped=PRETRAIN_SKIPPED,
                      warm_ok=False)


def _check_distill(config: RunConfig, where: str) -> None:
  if not config.distill:
    return
  if WARM_START in config.distill:
    raise ConfigError(f"{where}.distill.{WARM_START}: a train key only (the teacher warm-starts)")
  if not config.distill.get("student_layers"):
    raise ConfigError(f"{where}.distill.student_layers is missing: the student's number of "
                      "transformer layers (e.g. 3 for a 6-layer teacher); remove the distill "
                      "section for no distillation")
  # The teacher is the train step's model: a placeholder stands for its path here.
  check_train_section(config.distill_settings(), where, section="distill",
                      run_keys={"teacher": "(the train step's model)"})


def _check_evaluate_and_push(config: RunConfig, where: str) -> None:
  e, push = config.evaluate, config.push
  if config.export.quantize != "none" and push.vertex_model:
    raise ConfigError(f"{where}: export.quantize {config.export.quantize!r} with "
                      "push.vertex_model: Vertex AI's TensorFlow images serve SavedModels, not "
                      "TF Lite; set export.quantize none or clear push.vertex_model")
  if e.split not in config.data.split_names():
    raise ConfigError(f"{where}: evaluate.split {e.split!r} is not one of the splits "
                      f"preprocessed (data.splits: {config.data.splits})")
  if (config.warm_start or e.baseline) and not push.to:
    raise ConfigError(f"{where}: push.to is missing; train.warm_start and evaluate.baseline read "
                      "the last model pushed there")
  if not push.to:
    raise ConfigError(f"{where}: push.to is missing: gs://bucket/models/NAME or a local directory")


def _check_resources(config: RunConfig, train: train_config_lib.TrainConfig, where: str) -> None:
  p = config.pipeline
  for step in ("preprocess", "train", "evaluate", "push", "score"):
    res: StepResources = getattr(p, step)
    key = f"{where}: pipeline.{step}"
    configs.choice(res.accelerator_type, ACCELERATOR_TYPES, f"{key}.accelerator_type")
    _positive(res.accelerator_count, f"{key}.accelerator_count", minimum=0)
    _positive(res.retries, f"{key}.retries", minimum=0)
    if res.accelerator_type and res.accelerator_count < 1:
      raise ConfigError(f"{key}.accelerator_count is {res.accelerator_count}: set it to 1 or more "
                        f"for accelerator_type {res.accelerator_type!r}, or clear the type")
  if p.train.accelerator_type in TPU_TYPES:
    if train.strategy not in ("auto", "tpu"):
      raise ConfigError(f"{where}: train.strategy {train.strategy!r} cannot use "
                        f"pipeline.train.accelerator_type {p.train.accelerator_type!r}: use 'tpu'")
    # A paid TPU must not train on the host's CPU: `auto` only looks for GPUs
    # and TF_CONFIG, so it becomes `tpu`, on the TPU VM the task runs on.
    config.train["strategy"] = "tpu"
    config.train.setdefault("tpu", "local")
  elif p.train.accelerator_type in GPU_TYPES and train.strategy == "tpu":
    raise ConfigError(f"{where}: train.strategy 'tpu' cannot use pipeline.train.accelerator_type "
                      f"{p.train.accelerator_type!r} (a GPU): use 'auto', or a TPU accelerator")
  if not p.image:
    raise ConfigError(f"{where}: pipeline.image is missing: the bertline image (see Dockerfile)")
  _positive(config.schedule.max_concurrency, f"{where}: schedule.max_concurrency", minimum=1)


def _check_sequence_length(config: RunConfig, where: str) -> None:
  """data.max_seq_length must fit the model, known before any work for local checkpoints.

  The check is the model's own (model_config.check_sequence_length); a gs://
  checkpoint is checked by the trainer, which reads it anyway.
  """
  checkpoint = resources.resolve_checkpoint(config.model.init_checkpoint)
  if fileio.is_remote(checkpoint):
    return
  directory = checkpoint if os.path.isdir(checkpoint) else os.path.dirname(checkpoint)
  path = model_config.config_file_in(directory)
  if path is None:
    return
  try:
    limit = json.loads(fileio.read_text(path)).get("max_position_embeddings")
  except (ValueError, OSError):
    return  # the trainer reports an unreadable config with its own message
  if isinstance(limit, int):
    try:
      model_config.check_sequence_length(config.data.max_seq_length, limit, path,
                                         key="data.max_seq_length")
    except ValueError as e:
      raise ConfigError(f"{where}: {e}") from None


def _positive(value: int, key: str, minimum: int) -> None:
  if value < minimum:
    raise ConfigError(f"{key} is {value!r}; it must be >= {minimum}")


def _parse_override(text: str) -> tuple:
  if "=" not in text:
    raise ConfigError(f"--set {text!r}: expected KEY=VALUE, e.g. --set train.max_steps=100")
  key, raw = text.split("=", 1)
  key = key.strip()
  try:
    value = yaml.safe_load(raw) if raw.strip() else ""
  except yaml.YAMLError as e:
    raise ConfigError(configs.yaml_error(f"--set {text!r}", e)) from None
  return key, value


def apply_overrides(data: Dict[str, Any], overrides: List[str]) -> Dict[str, Any]:
  """Returns a copy of `data` with each `section.key=value` set (values parsed as YAML)."""
  data = copy.deepcopy(data)
  for text in overrides:
    key, value = _parse_override(text)
    parts = key.split(".")
    node = data
    for part in parts[:-1]:
      child = node.setdefault(part, {})
      if not isinstance(child, dict):
        raise ConfigError(f"--set {text!r}: {part!r} is not a section")
      node = child
    node[parts[-1]] = value
  return data


def from_dict(data: Dict[str, Any], where: str = "config",
              overrides: Optional[List[str]] = None) -> RunConfig:
  """Builds and validates a RunConfig from a mapping (YAML's content) and overrides."""
  if overrides:
    data = apply_overrides(data or {}, overrides)
    where = f"{where} (with --set {' '.join(overrides)})"
  _refuse_run_keys(data or {}, where)
  merged = _merge(configs.to_dict(RunConfig()), data or {})
  return validate(configs.from_dict(RunConfig, merged, where), where)


# What to say instead of "remove it" for a run key someone would naturally set.
_RUN_KEY_HINTS = {("data", "data_dir"): "; set data.path (or data.builtin)",
                  ("data", "vocab_file"): "; it is model.vocab_file (or the checkpoint's vocab.txt)",
                  ("pretrain", "vocab_file"): "; it is model.vocab_file (or the checkpoint's "
                  "vocab.txt), as for the labeled data",
                  ("pretrain", "do_lower_case"): "; it is data.do_lower_case: the model reads "
                  "both corpora alike",
                  ("push", "model"): "; the pipeline pushes the model it trained",
                  ("score", "model"): "; score uses the last version pushed to push.to"}


def _refuse_run_keys(data: Dict[str, Any], where: str) -> None:
  """A stage's section holds its settings, not the paths each run sets itself."""
  for name, stage in STAGE_SECTIONS.items():
    section = data.get(name)
    if not isinstance(section, dict):
      continue
    for key in stage.RUN_KEYS:
      if key in section:
        raise ConfigError(f"{where}.{name}.{key}: the pipeline sets it for each run; remove it"
                          + _RUN_KEY_HINTS.get((name, key), ""))


def defaults(overrides: Optional[List[str]] = None) -> RunConfig:
  """The built-in defaults (plus overrides), unvalidated: data is given at submission."""
  data = apply_overrides({}, overrides or [])
  return configs.from_dict(RunConfig, _merge(configs.to_dict(RunConfig()), data), "defaults")


def _merge(defaults: Dict[str, Any], data: Dict[str, Any]) -> Dict[str, Any]:
  """`data` over the defaults, section by section.

  A partly given section keeps its other defaults: `pipeline: {train: {retries: 5}}`
  still trains on the default GPU. Mappings that are values (thresholds) are
  replaced whole; unknown keys pass through to be reported by name.
  """
  if not isinstance(data, dict):
    return data
  out = dict(defaults)
  for key, value in data.items():
    default = defaults.get(key)
    if isinstance(default, dict) and default and isinstance(value, dict):
      out[key] = _merge(default, value)
    else:
      out[key] = value
  return out


def load(path: str, overrides: Optional[List[str]] = None) -> RunConfig:
  """Reads and validates a run config file; `overrides` are `section.key=value` strings."""
  try:
    text = fileio.read_text(path)
  except FileNotFoundError as e:
    raise FileNotFoundError(f"config file {path} not found (see examples/ for run configs)") from e
  try:
    data = yaml.safe_load(text) or {}
  except yaml.YAMLError as e:
    raise ConfigError(configs.yaml_error(path, e)) from None
  if not isinstance(data, dict):
    raise ConfigError(f"{path}: expected a mapping of sections (data, model, train, ...), "
                      f"got {type(data).__name__}")
  config = from_dict(data, where=path, overrides=overrides)
  return _relative_to(config, os.path.dirname(os.path.abspath(path)))


def _relative_to(config: RunConfig, config_dir: str) -> RunConfig:
  """Local paths in a config are relative to the current directory, as on the command line.

  Only task_config falls back to the config's own folder, so that
  examples/*.yaml can name a task file beside them wherever they are run from.
  """
  tc = config.data.task_config
  if tc and not fileio.is_remote(tc) and not os.path.isabs(tc) and not os.path.exists(tc):
    candidate = os.path.join(config_dir, tc)
    if os.path.exists(candidate):
      config.data.task_config = candidate
  return config


# What `bertline run` asks the pushed model about at the end.
DEFAULT_SENTENCE = "I love this phone, the battery lasts all day!"


def run_parser() -> flags.ArgumentParser:
  """`bertline run`'s flags (here, not in local_run.py: it loads TensorFlow)."""
  parser = flags.ArgumentParser(
      prog="bertline run",
      description="Run the whole pipeline on this machine — preprocess (Beam DirectRunner), "
      "train, evaluate, and export and push when blessed — from one YAML config.",
      epilog="Example: bertline run --config examples/demo_tweets.yaml --set train.max_steps=50")
  add_config_arguments(parser)
  parser.add_argument("--work-dir", help="where intermediate outputs go (default: the config's "
                      "pipeline.work_dir)")
  parser.add_argument("--run-date", default="", help="YYYY-MM-DD filled into a {date} data path "
                      "(default today, UTC)")
  parser.add_argument("--sentence", default=DEFAULT_SENTENCE,
                      help="sample text the pushed model is asked about at the end")
  return parser


def add_config_arguments(parser) -> None:
  """The --config / --set flags every pipeline command shares."""
  parser.add_argument("--config", required=True,
                      help="run config YAML (see examples/demo_tweets.yaml)")
  parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                      help="override a config value, e.g. --set train.max_steps=100 "
                      "(repeatable; values are YAML)")
