"""`bertline run --config C.yaml`: the whole pipeline on this machine.

A small runner of the one pipeline declaration (pipeline/definition.py),
which pipeline/pipeline.py compiles for Kubeflow: it walks the same steps in
the same order, and calls each step's kfp component function itself, in this
process, with local artifacts — Beam's DirectRunner, the trainer on this
machine's CPU (or GPU), a local directory (or gs://) as the push target —
then asks the pushed model's raw-text signature about a sample sentence.

Like kfp's caching, each cached step's output lives under
<work_dir>/<step's folder>/<hash of its inputs>/ (a step never reused: in
<step's folder>/latest/) and a finished step is reused when its inputs are unchanged (an artifact input: its path,
which holds the key of the step that made it; a local file: its content too): re-running after a
crash or a change redoes only what changed. An unfinished step's output is
cleared before it runs again, but for train and distill, which resume from
theirs.
"""

import hashlib
import inspect
import json
import logging
import os
import time
from typing import Any, Dict, List, NamedTuple, Optional

# `bertline run` calls the kfp components' own functions, with kfp's artifact types: it
# needs the pipeline extra (pip install -e '.[pipeline]'), as Kubeflow does.
from kfp.dsl import Artifact
from kfp.dsl.types import type_annotations

from bertline import fileio, schema
from bertline.components import kfp_components, steps
from bertline.exporter.load import Classifier
from bertline.pipeline import config as config_lib
from bertline.pipeline import definition

log = logging.getLogger("bertline.pipeline")

DONE_FILE = "_bertline_step.json"
LATEST = "latest"


class RunResult(NamedTuple):
  metrics: Dict[str, Any]
  blessing: Dict[str, Any]
  blessed: bool
  pushed: str
  answer: Optional[Dict[str, Any]]
  scored: Optional[Dict[str, Any]] = None  # the score step's summary, when the config scores


# The flags live with the run config (no TensorFlow): `bertline run --help` answers at once.
build_parser = config_lib.run_parser


def _key(*parts: Any) -> str:
  return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _content(value: Any) -> Any:
  """A local file input stands for its content too: an edited task YAML is a new input."""
  if isinstance(value, str) and value and not fileio.is_remote(value) and os.path.isfile(value):
    return [value, fileio.sha256_file(value)]
  return value


class _Walk:
  """One walk of definition.STEPS on this machine: the outputs of the steps so far."""

  def __init__(self, config: config_lib.RunConfig, work: str, run_date: str):
    self.config, self.work = config, work
    self.params = {**definition.parameters(config), "run_date": run_date}
    self.constants = definition.constants(config)
    if not config.score.output:  # on Kubeflow: the score step's artifact; here: one per date
      self.constants["score_settings"] = {**self.constants["score_settings"],
                                          "output": os.path.join(work, "scores", "{date}")}
    self.outputs: Dict[str, Dict[str, Any]] = {}

  def inputs(self, step: definition.Step):
    """The step's arguments, and the parts of its cache key."""
    args, parts = {}, {}
    for name, source in step.inputs.items():
      if isinstance(source, definition.Param):
        args[name] = parts[name] = self.params[source.name]
      elif isinstance(source, definition.Const):
        args[name] = parts[name] = self.constants[source.name]
      else:
        producer = definition.producer(source, self.outputs)
        if not producer:  # an optional input whose step is not in this pipeline: left out
          continue
        args[name] = self.outputs[producer][source.name]
        # An artifact counts by its path, as in kfp's cache key: a cached producer's path holds
        # its key; a never-cached one (resolve data) writes one fixed path, and hands on the
        # fingerprint of what it wrote.
        parts[name] = ["artifact", args[name].path] if isinstance(args[name], Artifact) else args[name]
    return args, {k: _content(v) for k, v in parts.items()}

  def run(self, step: definition.Step) -> Dict[str, Any]:
    """Runs the step's component here (or reuses its finished outputs); returns its outputs."""
    func = getattr(kfp_components, step.component)
    args, parts = self.inputs(step)
    key = _key(step.component, parts)
    signature = inspect.signature(func)
    made = [n for n, p in signature.parameters.items()
            if type_annotations.is_artifact_wrapped_in_Output(p.annotation)]
    # The last output artifact is the step's own (evaluate: evaluation, after the UI's metrics).
    # A step that is never reused writes where its last run did: its outputs' paths are then
    # the same from run to run (resolve data's corpus: preprocess takes its path as an input).
    folder = key if step.cached else LATEST
    paths = {n: os.path.join(self.work, step.local_dir, folder if n == made[-1] else
                             f"{folder}.{n}") for n in made}
    main = paths[made[-1]]
    done = os.path.join(main, DONE_FILE)
    if step.cached and self.config.pipeline.caching and _done(main, key):
      log.info("[%s] unchanged inputs: reusing %s", step.title, main)
      record = json.loads(fileio.read_text(done))
      outputs = dict(record["outputs"])
      for name in made:
        outputs[name] = _artifact(signature.parameters[name].annotation, paths[name],
                                  record["metadata"].get(name, {}))
    else:
      log.info("[%s] -> %s", step.title, main)
      if not step.resumes:  # what an interrupted run left is not half-reused
        for path in paths.values():
          fileio.rmtree(path)
      artifacts = {n: _artifact(signature.parameters[n].annotation, paths[n], {}) for n in made}
      returned = func(**args, **artifacts)
      outputs = _named(signature.return_annotation, returned)
      fileio.makedirs(main)
      _mark_done(main, key, outputs=outputs,
                 metadata={n: a.metadata for n, a in artifacts.items()})
      outputs.update(artifacts)
    self.outputs[step.id] = outputs
    return outputs


def _artifact(annotation: Any, path: str, metadata: Dict[str, Any]) -> Artifact:
  """A kfp artifact at a local (or gs://) path, as a kfp executor would hand the component."""
  artifact = type_annotations.get_io_artifact_class(annotation)(
      name=os.path.basename(path), uri=path, metadata=dict(metadata))
  artifact.custom_path = path  # .path is the path itself, gs:// included (not kfp's /gcs/ mount)
  return artifact


def _named(annotation: Any, returned: Any) -> Dict[str, Any]:
  """A component's return value by output name (a NamedTuple's fields, else "Output")."""
  fields = getattr(annotation, "_fields", None)
  if fields:
    return dict(zip(fields, returned))
  return {} if returned is None else {definition.RETURNED: returned}


def _done(out_dir: str, key: str) -> bool:
  path = os.path.join(out_dir, DONE_FILE)
  return fileio.exists(path) and json.loads(fileio.read_text(path)).get("key") == key


def _mark_done(out_dir: str, key: str, **info: Any) -> None:
  fileio.write_text_atomic(os.path.join(out_dir, DONE_FILE),
                           json.dumps(dict(info, key=key, finished=time.time()), indent=2,
                                      default=str) + "\n")


def run(config: config_lib.RunConfig, work_dir: Optional[str] = None, run_date: str = "",
        sentence: Optional[str] = config_lib.DEFAULT_SENTENCE) -> RunResult:
  """Runs the pipeline for `config`; returns metrics, blessing, pushed path and the answer.

  The work dir is this run's while it runs: a second `bertline run` of it is refused (two
  would train into one model_dir and push the same model twice).
  """
  work_dir = work_dir or config.pipeline.work_dir
  with fileio.output_claim(work_dir, RUN_LOCK, f"another `bertline run` is running in work dir "
                           f"{work_dir}; wait for it, or give another --work-dir"):
    return _run(config, work_dir, run_date, sentence)


# A run's claim on its work dir (fileio.output_claim: released however the process ends).
RUN_LOCK = ".run.lock"


def _run(config: config_lib.RunConfig, work_dir: str, run_date: str,
         sentence: Optional[str]) -> RunResult:
  walk = _Walk(config, work_dir, run_date)
  started = time.time()
  blessed: Optional[bool] = None
  with steps.shared_process():  # every step runs in this one process
    for step in definition.steps(config):
      if step.when and blessed != (step.when == "blessed"):
        continue
      outputs = walk.run(step)
      _REPORTS.get(step.component, lambda *_: None)(outputs, walk)
      if step.id == definition.BLESSED[0]:
        blessed = bool(outputs[definition.BLESSED[1]])
  metrics, blessing = _evaluation(walk.outputs["evaluate"])
  pushed = walk.outputs.get("export-push", {}).get(definition.RETURNED, "")
  answer = None
  if pushed and sentence:
    answer = ask(pushed, sentence)
    said = answer.get(schema.OUTPUT_LABEL) or [x for x in answer.get(schema.OUTPUT_LABELS, []) if x]
    print(f"{pushed} (serving_default, raw text in) says {sentence!r} is {said}: "
          f"{json.dumps(answer)}")
  scored = next((walk.outputs[s.id]["scores"].metadata for s in definition.STEPS
                 if s.component == "score" and s.id in walk.outputs), None)
  log.info("Pipeline finished in %.0fs", time.time() - started)
  return RunResult(metrics, blessing, bool(blessed), pushed, answer, scored)


def _report_resolved(outputs: Dict[str, Any], walk: _Walk) -> None:
  last = outputs["warm_start_from"] or outputs["baseline_model"]
  log.info("[resolve data] %s (fingerprint %s, date %s)%s", outputs["data_dir"],
           outputs["fingerprint"], outputs["date"], f"; last pushed model {last}" if last else "")
  task_config = outputs["task_config"]
  if task_config and not fileio.exists(task_config):
    raise FileNotFoundError(f"data.task_config {task_config} not found (see examples/tasks/ for "
                            "task YAML files)")


def _evaluation(outputs: Dict[str, Any]):
  """(metrics.json, blessing.json) of the evaluate step's outputs."""
  evaluation = outputs["evaluation"].path
  return tuple(json.loads(fileio.read_text(fileio.join(evaluation, name)))
               for name in (schema.METRICS_FILE, schema.BLESSING_FILE))


def _report_evaluation(outputs: Dict[str, Any], walk: _Walk) -> None:
  evaluation = outputs["evaluation"].path
  metrics, blessing = _evaluation(outputs)
  model = walk.outputs[definition.producer(definition.Out(("distill", "train"), "model"),
                                           walk.outputs)]["model"].path
  _print_metrics(steps.Evaluation(metrics, blessing, bool(outputs[definition.RETURNED])), model)
  print(f"report: {fileio.join(evaluation, schema.REPORT_FILE)}")
  if not outputs[definition.RETURNED]:
    print(f"not blessed: export and push skipped (see "
          f"{fileio.join(evaluation, schema.BLESSING_FILE)})")


def _report_push(outputs: Dict[str, Any], walk: _Walk) -> None:
  already = outputs["exported"].metadata.get("already_pushed")
  print(f"pushed: {outputs[definition.RETURNED]}" +
        (" (this very model is already the last pushed one)" if already else ""))


def _report_score(outputs: Dict[str, Any], walk: _Walk) -> None:
  summary = outputs["scores"].metadata
  print(f"scored: {summary['scored']} rows, {summary['rejected']} rejected, with version "
        f"{summary['model_version']} -> {outputs[definition.RETURNED]}")


# What `bertline run` prints after a step (Kubeflow shows the same in its UI).
_REPORTS = {"resolve_data": _report_resolved, "evaluate": _report_evaluation,
            "export_push": _report_push, "score": _report_score}


def _print_metrics(result: steps.Evaluation, model_dir: str) -> None:
  scalars = steps.scalar_metrics(result.metrics)
  print("metrics: " + ", ".join(f"{k}={v:.4g}" for k, v in scalars.items()))
  matrix = steps.confusion(result.metrics, model_dir)
  if matrix:
    labels, matrix = matrix
    width = max(len(label) for label in labels)
    print("confusion matrix (rows: true, columns: predicted):")
    print(" " * (width + 2) + " ".join(f"{label[:8]:>8}" for label in labels))
    for label, row in zip(labels, matrix):
      print(f"  {label:<{width}}" + " ".join(f"{v:>8}" for v in row))
  else:  # multi-label: each label's F1 at its threshold
    print("per label (F1 at threshold): " + ", ".join(
        f"{label} {result.metrics['f1'][label]:.3f}@{result.metrics['thresholds'][label]:.2f}"
        for label in result.metrics["labels"]))
  print(f"blessed: {result.blessed}")
  for reason in result.blessing.get("reasons", []):
    print(f"  {reason}")


def ask(model_path: str, text_a: str, text_b: Optional[str] = None) -> Dict[str, Any]:
  """Calls a pushed version's raw-text signature on one example (the graph's own tokenizer).

  Returns the signature's outputs as Python values (schema.OUTPUT_*: the
  probabilities, the label id and the label name).
  """
  # Loads TensorFlow: deferred so that `bertline run --help` answers without it.
  model = Classifier(model_path)
  outputs = model.outputs([text_a], [text_b or ""] if model.pairs else None)
  answer: Dict[str, Any] = {}
  def plain(value):
    return value.decode("utf-8") if isinstance(value, bytes) else value
  for name, value in outputs.items():
    value = value[0]
    value = value.decode("utf-8") if isinstance(value, bytes) else value.tolist()
    answer[name] = [plain(v) for v in value] if isinstance(value, list) else plain(value)
  return answer


def main(argv: List[str]) -> int:
  args = build_parser().parse_args(argv)
  config = config_lib.load(args.config, args.overrides)
  run(config, args.work_dir, args.run_date, args.sentence)
  return 0
