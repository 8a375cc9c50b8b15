"""`bertline run --config C.yaml`: the whole pipeline on this machine.

Calls the very step functions the Kubeflow components call
(components/steps.py), in the pipeline's order, with Beam's DirectRunner, the
trainer on this machine's CPU (or GPU) and a local directory (or gs://) as the
push target:

  resolve data -> preprocess -> train -> evaluate -> [blessed] export -> push
  -> ask the pushed model's raw-text signature about a sample sentence

Like kfp's caching, each step's output lives under
<work_dir>/<step>/<hash of its inputs>/ and a finished step is reused when its
inputs (the data's content included) are unchanged: re-running after a crash
or a change redoes only what changed, and nothing is ever deleted.
"""

import hashlib
import json
import logging
import os
import time
from typing import Any, Dict, List, NamedTuple, Optional

from bertline import fileio, flags, schema
from bertline.components import steps
from bertline.pipeline import config as config_lib

log = logging.getLogger("bertline.pipeline")

DONE_FILE = "_bertline_step.json"
DEFAULT_SENTENCE = "I love this phone, the battery lasts all day!"


class RunResult(NamedTuple):
  metrics: Dict[str, Any]
  blessing: Dict[str, Any]
  blessed: bool
  pushed: str
  answer: Optional[Dict[str, Any]]
  scored: Optional[Dict[str, Any]] = None  # the score step's summary, when the config scores


def build_parser() -> flags.ArgumentParser:
  parser = flags.ArgumentParser(
      prog="bertline run",
      description="Run the whole pipeline on this machine — preprocess (Beam DirectRunner), "
      "train, evaluate, and export and push when blessed — from one YAML config.",
      epilog="Example: bertline run --config examples/demo_tweets.yaml --set train.max_steps=50")
  config_lib.add_config_arguments(parser)
  parser.add_argument("--work-dir", help="where intermediate outputs go (default: the config's "
                      "pipeline.work_dir)")
  parser.add_argument("--run-date", default="", help="YYYY-MM-DD filled into a {date} data path "
                      "(default today, UTC)")
  parser.add_argument("--sentence", default=DEFAULT_SENTENCE,
                      help="sample text the pushed model is asked about at the end")
  return parser


def _key(*parts: Any) -> str:
  return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _done(out_dir: str, key: str) -> bool:
  path = os.path.join(out_dir, DONE_FILE)
  return os.path.exists(path) and json.loads(fileio.read_text(path)).get("key") == key


def _mark_done(out_dir: str, key: str, **info: Any) -> None:
  fileio.write_text_atomic(os.path.join(out_dir, DONE_FILE),
                           json.dumps(dict(info, key=key, finished=time.time()), indent=2) + "\n")


def _step(name: str, out_dir: str, key: str) -> bool:
  """True when the step must run; logs either way."""
  if _done(out_dir, key):
    log.info("[%s] unchanged inputs: reusing %s", name, out_dir)
    return False
  log.info("[%s] -> %s", name, out_dir)
  return True


def run(config: config_lib.RunConfig, work_dir: Optional[str] = None, run_date: str = "",
        sentence: Optional[str] = DEFAULT_SENTENCE) -> RunResult:
  """Runs the pipeline for `config`; returns metrics, blessing, pushed path and the answer."""
  work = work_dir or config.pipeline.work_dir
  d, e = config.data, config.evaluate
  date = steps.run_date(run_date)
  started = time.time()

  # resolve data (never cached, like the pipeline's first task).
  resolved = steps.resolve_data(d.path, d.builtin, d.limit, d.task, d.task_config, date,
                                os.path.join(work, "data", d.builtin or "none"), config.push.to,
                                config.warm_start, e.baseline)
  # (Kubeflow's preprocess task maps the corpus again with steps.data_source: its artifact
  # path there need not be the one resolve_data wrote to. Here it is.)
  data_dir, task, task_config = resolved.data_dir, resolved.task, resolved.task_config
  last = resolved.warm_start_from or resolved.baseline_model
  log.info("[resolve data] %s (fingerprint %s, date %s)%s", data_dir, resolved.fingerprint, date,
           f"; last pushed model {last}" if last else "")

  if task_config and not fileio.exists(task_config):
    raise FileNotFoundError(f"data.task_config {task_config} not found (see examples/tasks/ for "
                            "task YAML files)")
  vocab = steps.vocab_for(config.model.init_checkpoint, config.model.vocab_file)
  pre_key = _key(resolved.fingerprint, task, task_config and fileio.read_text(task_config),
                 fileio.sha256_file(vocab), d.preprocess_settings(changed_only=False))
  examples = os.path.join(work, "examples", pre_key)
  if _step("preprocess", examples, pre_key):
    steps.preprocess(data_dir, examples, task, task_config, vocab, d.preprocess_settings(),
                     overwrite=True)
    _mark_done(examples, pre_key)

  settings = config.train_settings()
  train_key = steps.training_key(examples, resolved.fingerprint, config.model.init_checkpoint,
                                 settings, resolved.warm_start_from)
  model_dir = os.path.join(work, "model", train_key)
  if _step("train", model_dir, train_key):
    steps.train(examples, model_dir, config.model.init_checkpoint, settings,
                resolved.warm_start_from)
    _mark_done(model_dir, train_key)
  if config.distill:  # the student, not the teacher, is evaluated and pushed
    student_settings = config.distill_settings()
    student_key = steps.distill_key(examples, resolved.fingerprint, train_key, student_settings)
    student_dir = os.path.join(work, "student", student_key)
    if _step("distill", student_dir, student_key):
      steps.distill(examples, model_dir, student_dir, student_settings)
      _mark_done(student_dir, student_key, teacher=model_dir)
    model_dir, train_key = student_dir, student_key

  eval_key = _key(train_key, e.split, e.thresholds, resolved.baseline_model, e.max_regression,
                  config.export.quantize)
  eval_dir = os.path.join(work, "evaluation", eval_key)
  result = steps.evaluate(model_dir, examples, eval_dir, e.split, e.thresholds,
                          resolved.baseline_model, e.max_regression)
  _print_metrics(result, model_dir)

  pushed, answer = "", None
  if result.blessed:
    pu = config.push
    outcome = steps.export_and_push(model_dir, os.path.join(work, "export", eval_key),
                                    pu.to, pu.force, evaluation_dir=eval_dir, key=train_key,
                                    examples_dir=examples, check_serving=pu.check_serving,
                                    vertex_model=pu.vertex_model, vertex_project=pu.vertex_project,
                                    vertex_region=pu.vertex_region,
                                    quantize=config.export.quantize)
    pushed = outcome.pushed
    print(f"pushed: {pushed}" + (" (this very model is already the last pushed one)"
                                 if outcome.already_pushed else ""))
  else:
    print("not blessed: export and push skipped (see "
          f"{os.path.join(eval_dir, 'blessing.json')})")
  if pushed and sentence:
    answer = ask(pushed, sentence)
    print(f"{pushed} (serving_default, raw text in) says {sentence!r} is "
          f"{answer.get(schema.OUTPUT_LABEL, '?')}: {json.dumps(answer)}")
  scored = None
  sc = config.score
  if sc.input:  # with the model in production: this run's if it was pushed, else the last one
    out = sc.output or os.path.join(work, "scores", date)
    scored = steps.score(config.push.to, sc.input, out, date, sc.format, sc.text_a, sc.text_b,
                         sc.id, sc.compression, sc.batch_size, list(sc.beam_args))
    print(f"scored: {scored['scored']} rows, {scored['rejected']} rejected, with version "
          f"{scored['model_version']} -> {steps.resolve_date(out, date)}")
  log.info("Pipeline finished in %.0fs", time.time() - started)
  return RunResult(result.metrics, result.blessing, result.blessed, pushed, answer, scored)


def _print_metrics(result: steps.Evaluation, model_dir: str) -> None:
  scalars = steps.scalar_metrics(result.metrics)
  print("metrics: " + ", ".join(f"{k}={v:.4g}" for k, v in scalars.items()))
  labels, matrix = steps.confusion(result.metrics, model_dir)
  width = max(len(label) for label in labels)
  print("confusion matrix (rows: true, columns: predicted):")
  print(" " * (width + 2) + " ".join(f"{label[:8]:>8}" for label in labels))
  for label, row in zip(labels, matrix):
    print(f"  {label:<{width}}" + " ".join(f"{v:>8}" for v in row))
  print(f"blessed: {result.blessed}")
  for reason in result.blessing.get("reasons", []):
    print(f"  {reason}")


def ask(model_path: str, text_a: str, text_b: Optional[str] = None) -> Dict[str, Any]:
  """Calls a pushed SavedModel's raw-text signature on one example (no bertline code involved).

  Returns the signature's outputs as Python values (schema.OUTPUT_*: the
  probabilities, the label id and the label name).
  """
  import numpy as np
  import tensorflow as tf
  import tensorflow_text  # noqa: F401  Registers the in-graph tokenizer's ops (TF Serving links them).
  from bertline.evaluator import quantize
  if quantize.is_tflite(model_path):  # export.quantize: tokenizer/ then model.tflite
    model = quantize.TFLiteModel(model_path)
    wanted = model.text_inputs
  else:
    model = tf.saved_model.load(model_path)
    _, wanted = model.signatures["serving_default"].structured_input_signature
  signature = model.signatures["serving_default"]
  inputs = {schema.SERVING_TEXT_A: tf.constant([text_a])}
  if schema.SERVING_TEXT_B in wanted:
    inputs[schema.SERVING_TEXT_B] = tf.constant([text_b or ""])
  outputs = {k: np.asarray(v)[0] for k, v in signature(**inputs).items()}
  answer: Dict[str, Any] = {}
  for name, value in outputs.items():
    if isinstance(value, bytes):
      value = value.decode("utf-8")
    elif hasattr(value, "tolist"):
      value = value.tolist()
      value = value.decode("utf-8") if isinstance(value, bytes) else value
    answer[name] = value
  return answer


def main(argv: List[str]) -> int:
  args = build_parser().parse_args(argv)
  config = config_lib.load(args.config, args.overrides)
  run(config, args.work_dir, args.run_date, args.sentence)
  return 0
