"""What each pipeline step does, as plain functions: no kfp here.

The kfp components (components/kfp_components.py) and `bertline run`
(pipeline/local_run.py) both call these, so a local run and a Kubeflow run
execute the same code. Each step calls its stage through the stage's CLI entry
point, `main(argv)`, with flags built from config values: the CLI flags are the
contract between the pipeline and the stages (DEVELOPERS.md).
"""

from __future__ import annotations

import datetime
import hashlib
import importlib
import json
import logging
import os
from typing import Any, Dict, List, NamedTuple, Optional, Sequence

from bertline import fileio, resources, schema

log = logging.getLogger("bertline.pipeline")

MINILM = "builtin:minilm"
DATE_PLACEHOLDERS = ("{{date}}", "{date}")

# The task of the packaged tweets (the same as examples/tasks/tweets.yaml), written
# beside the TSVs so that a container needs no file from the repository.
TWEETS_TASK_YAML = """\
name: tweets
labels: [negative, neutral, positive]
splits:
  train: {file: train.tsv, header: true, text_a: 1, label: 0}
  dev: {file: dev.tsv, header: true, text_a: 1, label: 0}
  test: {file: test.tsv, header: true, text_a: 1, label: 0}
"""


class ResolvedData(NamedTuple):
  data_dir: str
  task: str
  task_config: str
  fingerprint: str
  date: str


def _stage(module: str):
  """Imports a stage module, saying which issue brings it when it is not there yet."""
  try:
    return importlib.import_module(module)
  except ModuleNotFoundError as e:
    if e.name and module.startswith(e.name):
      raise ModuleNotFoundError(f"stage module {module} is not installed in this checkout "
                                "(its stage has not landed yet)", name=e.name) from e
    raise


def _call_stage(module: str, argv: List[str]) -> None:
  log.info("%s %s", module, " ".join(argv))
  rc = _stage(module).main(argv)
  if rc:
    raise RuntimeError(f"{module}.main({argv}) failed with exit status {rc}")


def flag_value(value: Any) -> str:
  """A config value as a CLI argument: 3.0 -> "3" (an int flag reads it), 5e-05 -> "5e-05"."""
  if isinstance(value, float) and value.is_integer():
    return str(int(value))
  return str(value)


def flags(values: Dict[str, Any], negatable: Sequence[str] = ("xla",)) -> List[str]:
  """{"learning_rate": 5e-5, "xla": True, "seed": None} -> ["--learning-rate", "5e-05", "--xla"].

  None and "" mean "the stage's default" and are left out; False booleans too,
  except the `negatable` ones, sent as --no-FLAG (e.g. --no-xla).
  """
  argv: List[str] = []
  for name in sorted(values):
    value = values[name]
    flag = "--" + name.replace("_", "-")
    if value is False and name in negatable:
      argv.append("--no-" + name.replace("_", "-"))
      continue
    if value is None or value == "" or value is False:
      continue
    if value is True:
      argv.append(flag)
    else:
      argv += [flag, flag_value(value)]
  return argv


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


def fingerprint_dir(data_dir: str) -> str:
  """A hash of the files under `data_dir`: names, sizes and contents (gs://: modification times).

  Steps downstream take it as an input, so their cache key changes whenever
  the data does, even at an unchanged path.
  """
  entries = []
  if "://" in data_dir:
    import tensorflow as tf
    for root, _, files in tf.io.gfile.walk(data_dir):
      for name in files:
        path = fileio.join(root, name)
        stat = tf.io.gfile.stat(path)
        entries.append((os.path.relpath(path, data_dir), stat.length, stat.mtime_nsec))
  else:
    # Local data is hashed by content: rewriting the same files keeps the key.
    for root, _, files in os.walk(data_dir):
      for name in files:
        path = os.path.join(root, name)
        entries.append((os.path.relpath(path, data_dir), os.path.getsize(path),
                        fileio.sha256_file(path)))
  if not entries:
    raise FileNotFoundError(f"data.path {data_dir} holds no files: put the task's TSV files there "
                            "(for a dated prefix, check the date it resolved to)")
  digest = hashlib.sha256(json.dumps(sorted(entries)).encode()).hexdigest()
  return digest[:16]


def resolve_data(data_path: str, builtin: str, limit: int, task: str, task_config: str,
                 date: str, builtin_dir: str) -> ResolvedData:
  """Finds the run's TSV directory: `data_path` with its date filled in, or a packaged corpus.

  Args:
    data_path: str. TSV directory, possibly with `{date}`.
    builtin: str. "tweets" or "chnsenticorp" to write that packaged corpus
      into `builtin_dir` instead (limit rows; 0 for all).
    task, task_config: str. The task as configured (a builtin corpus brings its own).
    date: str. YYYY-MM-DD, see run_date().
    builtin_dir: str. Where a builtin corpus is written.
  """
  from bertline import corpora
  if builtin == "tweets":
    corpora.write_tweets_tsv(builtin_dir, limit=limit or None)
    task_config = os.path.join(builtin_dir, "tweets_task.yaml")
    fileio.write_text_atomic(task_config, TWEETS_TASK_YAML)
    data_dir, task = builtin_dir, ""
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
  return ResolvedData(data_dir, task, task_config, fingerprint_dir(data_dir), date)


def data_source(builtin: str, corpus_dir: str, data_dir: str, task: str, task_config: str):
  """(data_dir, task, task_config) preprocess reads: the builtin corpus's, else the configured."""
  if builtin == "tweets":
    return corpus_dir, "", os.path.join(corpus_dir, "tweets_task.yaml")
  if builtin == "chnsenticorp":
    return corpus_dir, "chnsenticorp", ""
  return data_dir, task, task_config


def resolve_checkpoint(init_checkpoint: str) -> str:
  """`builtin:minilm` -> the packaged pretrained MiniLM; anything else unchanged."""
  return resources.minilm_dir() if init_checkpoint == MINILM else init_checkpoint


def vocab_for(init_checkpoint: str, vocab_file: str = "") -> str:
  """The vocab.txt to tokenize with: `vocab_file`, else the one beside the checkpoint."""
  if vocab_file:
    return vocab_file
  ckpt = resolve_checkpoint(init_checkpoint)
  base = ckpt if fileio.exists(fileio.join(ckpt, "vocab.txt")) else os.path.dirname(ckpt)
  path = fileio.join(base, "vocab.txt")
  if not fileio.exists(path):
    raise FileNotFoundError(f"no vocab.txt beside model.init_checkpoint {init_checkpoint}: set "
                            "model.vocab_file to the vocab.txt shipped with the checkpoint")
  return path


def preprocess(data_dir: str, output_dir: str, task: str, task_config: str, vocab_file: str,
               do_lower_case: bool, max_seq_length: int, num_shards: int = 0,
               compression: str = "none", beam_args: Optional[List[str]] = None) -> Dict[str, Any]:
  """`bertline preprocess`; returns the metadata.json it wrote, as a dict."""
  argv = flags({"task": task, "task_config": task_config, "data_dir": data_dir,
                "vocab_file": vocab_file, "max_seq_length": max_seq_length,
                "output_dir": output_dir, "num_shards": num_shards or None,
                "compression": compression})
  argv.append("--do-lower-case" if do_lower_case else "--no-do-lower-case")
  _call_stage("bertline.preprocessing.beam_job", argv + list(beam_args or []))
  return schema.read_metadata(output_dir).to_dict()


def latest_pushed(target: str) -> str:
  """The newest complete model version under a push target, or "" when there is none.

  A version counts once its completion marker exists: push writes it last.
  """
  if not target or not fileio.exists(target):
    return ""
  if "://" in target:
    import tensorflow as tf
    names = [n.rstrip("/") for n in tf.io.gfile.listdir(target)]
  else:
    names = os.listdir(target)
  versions = sorted((int(n) for n in names if n.isdigit()), reverse=True)
  for version in versions:
    path = fileio.join(target, str(version))
    if fileio.exists(fileio.join(path, schema.PUSH_COMPLETE_MARKER)):
      return path
  return ""


def pushed_model_dir(pushed_model: str) -> str:
  """The training model_dir a pushed model was exported from, from its metadata asset ("" if unknown)."""
  path = fileio.join(pushed_model, "assets", schema.ASSET_METADATA)
  if not fileio.exists(path):
    return ""
  return json.loads(fileio.read_text(path)).get("model_dir", "") or ""


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


def train(data_dir: str, model_dir: str, init_checkpoint: str, train_flags: Dict[str, Any],
          warm_start_from: str = "") -> str:
  """`bertline train`; the model_dir of `warm_start_from` (the last pushed model), when it
  still exists, replaces init_checkpoint.

  Returns the checkpoint trained from.
  """
  warm = warm_start_checkpoint(warm_start_from) if warm_start_from else ""
  init = warm or resolve_checkpoint(init_checkpoint)
  argv = flags(dict(train_flags, data_dir=data_dir, init_checkpoint=init, model_dir=model_dir))
  _call_stage("bertline.trainer.train", argv)
  return init


class Evaluation(NamedTuple):
  metrics: Dict[str, Any]
  blessing: Dict[str, Any]
  blessed: bool


def evaluate(model_dir: str, data_dir: str, output_dir: str, split: str,
             thresholds: Dict[str, float], baseline_model: str = "",
             max_regression: float = 0.0) -> Evaluation:
  """`bertline evaluate` with the blessing; returns metrics.json, blessing.json and the decision."""
  argv = flags({"model_dir": model_dir, "data_dir": data_dir, "split": split,
                "output_dir": output_dir, "baseline_model": baseline_model,
                "max_regression": max_regression or None})
  for name, bound in sorted(thresholds.items()):
    argv += ["--threshold", f"{name}={flag_value(bound)}"]
  _call_stage("bertline.evaluator.evaluate", argv)
  metrics = json.loads(fileio.read_text(fileio.join(output_dir, schema.METRICS_FILE)))
  blessing = json.loads(fileio.read_text(fileio.join(output_dir, schema.BLESSING_FILE)))
  return Evaluation(metrics, blessing, bool(blessing["blessed"]))


def scalar_metrics(metrics: Dict[str, Any]) -> Dict[str, float]:
  """The metrics.json entries that are numbers (accuracy, loss, F1, ...), for the UI."""
  return {k: float(v) for k, v in sorted(metrics.items())
          if isinstance(v, (int, float)) and not isinstance(v, bool)}


def confusion(metrics: Dict[str, Any], model_dir: str):
  """(labels, matrix) of metrics.json: rows are true labels, columns predictions."""
  labels = metrics.get("labels")
  if not labels:
    labels = fileio.read_text(fileio.join(model_dir, schema.LABELS_FILE)).split()
  matrix = [[int(round(v)) for v in row] for row in metrics["confusion_matrix"]]
  return list(labels), matrix


def export_and_push(model_dir: str, export_dir: str, push_to: str, force: bool = False,
                    evaluation_dir: str = "") -> str:
  """`bertline export` then `bertline push`; returns the pushed model's path.

  Push reads the blessing.json in `evaluation_dir` (the evaluate step's
  output) and refuses an unblessed model unless `force`.
  """
  blessing = fileio.join(evaluation_dir, schema.BLESSING_FILE) if evaluation_dir else ""
  existing = _versions(export_dir)
  if not existing:
    argv = ["--model-dir", model_dir, "--export-dir", export_dir]
    if blessing and fileio.exists(blessing):
      argv += ["--blessing", blessing]  # Stored with the export, so the blessing travels along.
    _call_stage("bertline.evaluator.export", argv)
    existing = _versions(export_dir)
  if not existing:
    raise RuntimeError(f"bertline export wrote no numeric version under {export_dir}")
  version = str(existing[-1])
  exported = fileio.join(export_dir, version)
  pushed = fileio.join(push_to, version)
  if fileio.exists(fileio.join(pushed, schema.PUSH_COMPLETE_MARKER)):
    log.info("%s is already pushed to %s", exported, pushed)
    return pushed
  argv = ["--model", exported, "--to", push_to]
  if blessing and fileio.exists(blessing):
    argv += ["--blessing", blessing]
  _call_stage("bertline.evaluator.push", argv + (["--force"] if force else []))
  return pushed


def _versions(export_dir: str) -> List[int]:
  if not fileio.exists(export_dir):
    return []
  if "://" in export_dir:
    import tensorflow as tf
    names = [n.rstrip("/") for n in tf.io.gfile.listdir(export_dir)]
  else:
    names = os.listdir(export_dir)
  return sorted(int(n) for n in names if n.isdigit())
