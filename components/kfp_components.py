"""The kfp v2 components: thin, typed wrappers around components/steps.py.

One component per stage — resolve_data, pretrain_data and pretrain (when the
run config has a pretrain section), preprocess, train, distill (when it has a
distill section), evaluate, export_push, score — each a
lightweight Python component whose body imports bertline inside the project
image and calls its step function (components/steps.py). The pipeline's
declaration (pipeline/definition.py) wires them; Kubeflow runs them in
containers, `bertline run` calls these very functions in its own process. Artifacts carry the results between steps (Dataset, Model) and to the
Kubeflow UI (Metrics: accuracy, loss, F1; ClassificationMetrics: the confusion
matrix).

The image is chosen when the pipeline is built (`make(image)`), not at import:
the functions below are plain until decorated.
"""

# No `from __future__ import annotations`: kfp reads the annotations as types.
from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Artifact, ClassificationMetrics, Dataset, Input, Metrics, Model, Output


def resolve_data(data_path: str, builtin: str, limit: int, task: str, task_config: str,
                 run_date: str, push_to: str, warm_start: bool, baseline: str,
                 reuse_trained: bool, pretrain_input: list, corpus: Output[Dataset]
                 ) -> NamedTuple("ResolvedData", [("data_dir", str), ("task", str),
                                                   ("task_config", str), ("fingerprint", str),
                                                   ("date", str), ("warm_start_from", str),
                                                   ("baseline_model", str),
                                                   ("production_model", str),
                                                   ("pretrain_fingerprint", str)]):
  """Finds this run's data and last pushed model, and fingerprints the data (never cached).

  What it returns is what the cached steps after it take as inputs, so their
  cache keys change whenever the data or the model in production does.

  Args:
    data_path: TSV directory; `{date}` becomes the run's date (YYYY-MM-DD).
    builtin: "tweets" / "chnsenticorp": write that packaged corpus into `corpus`.
    limit: rows of the builtin corpus (0: all).
    task, task_config: the task as configured.
    run_date: YYYY-MM-DD to use instead of the run's date ("" for today, UTC, as
      this first task starts: a scheduled run's own date).
    push_to: the push target, where the last pushed model is looked up.
    warm_start: train from the last pushed model (when there is one).
    baseline: "last_pushed" to compare the candidate with the last pushed model.
    reuse_trained: hand the last pushed model to train, which reuses its training when
      this run's is the same (the run config's pipeline.caching).
    pretrain_input: the pre-training text's paths and globs (pretrain.input), fingerprinted.
    corpus: the builtin corpus, when there is one.
  Returns:
    data_dir, task, task_config, fingerprint (of the files), date,
    warm_start_from, baseline_model and production_model ("" or the last pushed model),
    pretrain_fingerprint ("" without pre-training input).
  """
  from bertline.components import steps  # in the image: kfp ships this body alone
  date = steps.run_date(run_date)
  resolved = steps.resolve_data(data_path, builtin, limit, task, task_config, date, corpus.path,
                                push_to, warm_start, baseline, reuse_trained, pretrain_input)
  corpus.metadata.update({"data_dir": resolved.data_dir, "fingerprint": resolved.fingerprint,
                          "date": date, "warm_start_from": resolved.warm_start_from,
                          "baseline_model": resolved.baseline_model})
  return tuple(resolved)


def preprocess(corpus: Input[Dataset], builtin: str, data_dir: str, task: str, task_config: str,
               fingerprint: str, init_checkpoint: str, vocab_file: str,
               preprocess_settings: dict, examples: Output[Dataset]):
  """`bertline preprocess`: TSV -> sharded TFRecords + metadata.json in `examples`.

  Args:
    corpus, builtin: the builtin corpus written by resolve_data, if any.
    data_dir: the TSV directory otherwise.
    fingerprint: the data's fingerprint: part of the cache key, so changed
      data at an unchanged path is never served from cache.
    init_checkpoint, vocab_file: the vocab.txt comes from the checkpoint.
    preprocess_settings: the run config's data settings that are
      PreprocessConfig's (max_seq_length, chunk_bytes, beam_args, ...),
      checked by that class here.
  """
  from bertline.components import steps  # in the image: kfp ships this body alone
  data_dir, task, task_config = steps.data_source(builtin, corpus.path, data_dir, task, task_config)
  metadata = steps.preprocess(data_dir, examples.path, task, task_config,
                              steps.vocab_for(init_checkpoint, vocab_file), preprocess_settings,
                              own_process=steps.own_process())  # a container does only this
  examples.metadata.update({"fingerprint": fingerprint, "labels": metadata["labels"],
                            "max_seq_length": metadata["max_seq_length"],
                            "num_examples": {k: v["num_examples"]
                                             for k, v in metadata["splits"].items()}})


def pretrain_data(corpus: Input[Dataset], builtin: str, data_dir: str, task: str,
                  task_config: str, fingerprint: str, pretrain_input: list,
                  pretrain_fingerprint: str, labeled_texts: bool, init_checkpoint: str,
                  vocab_file: str, do_lower_case: bool, pretrain_data_settings: dict,
                  pretrain_data: Output[Dataset]) -> str:
  """`bertline pretrain-data`: the pre-training text -> masked-LM TFRecords in `pretrain_data`.

  Args:
    corpus, builtin, data_dir, task, task_config: the labeled corpus, as preprocess takes it:
      with labeled_texts, its train split's texts are pre-trained on (labels dropped).
    fingerprint, pretrain_fingerprint: the labeled data's and pretrain_input's hashes (the
      cache key changes with the files).
    pretrain_input: unlabeled text, paths and globs (pretrain.input).
    init_checkpoint, vocab_file: the vocab.txt comes from the checkpoint, as for preprocess.
    do_lower_case: data.do_lower_case: both corpora are read alike.
    pretrain_data_settings: the pretrain section's PretrainDataConfig keys, checked here.
  Returns:
    The data's key: part of the pre-trained model's key.
  """
  from bertline.components import steps  # in the image: kfp ships this body alone
  data_dir, task, task_config = steps.data_source(builtin, corpus.path, data_dir, task, task_config)
  key = steps.pretrain_data(pretrain_data.path, list(pretrain_input),
                            steps.vocab_for(init_checkpoint, vocab_file), do_lower_case,
                            pretrain_data_settings,
                            labeled=(data_dir, task, task_config) if labeled_texts else None,
                            fingerprints=[fingerprint if labeled_texts else "",
                                          pretrain_fingerprint])
  pretrain_data.metadata.update({"data_key": key})
  return key


def pretrain(pretrain_data: Input[Dataset], data_key: str, init_checkpoint: str,
             pretrain_settings: dict, model: Output[Model]) -> str:
  """`bertline pretrain`: masked LM from `init_checkpoint` into `model` (a model_dir that
  train fine-tunes; a retried task resumes from it).

  Args:
    pretrain_data: the pretrain-data step's output.
    data_key: its key (part of this model's).
    pretrain_settings: the pretrain section's train keys (TrainConfig's), checked here.
  Returns:
    The pre-trained model's key (steps.pretraining_key), which train's key takes.
  """
  from bertline.components import steps  # in the image: kfp ships this body alone
  key = steps.pretraining_key(data_key, init_checkpoint, pretrain_settings)
  steps.pretrain(pretrain_data.path, model.path, init_checkpoint, pretrain_settings, key)
  model.metadata.update({"framework": "tensorflow", "training_key": key})
  return key


def train(examples: Input[Dataset], fingerprint: str, init_checkpoint: str, train_settings: dict,
          warm_start_from: str, production_model: str, model: Output[Model],
          pretrained: Input[Model] = None) -> str:
  """`bertline train` into `model` (a model_dir; a retried task resumes from it).

  Args:
    examples: preprocess output.
    fingerprint: the raw data's fingerprint (part of the training key).
    init_checkpoint: checkpoint to fine-tune ("builtin:minilm" for the packaged MiniLM).
    pretrained: the pretrain step's model, fine-tuned instead of init_checkpoint (absent
      without a pretrain section).
    train_settings: the trainer's TrainConfig keys ({"learning_rate": 5e-5, ...}).
    warm_start_from: the last pushed model to start from instead ("" for none).
    production_model: the last pushed model: when it was trained with this run's training
      key, its training is copied rather than done again (as a cache hit would serve it).
  Returns:
    The training key (steps.training_key): export and push compare it with the
    last pushed model's, so a re-run pushes no duplicate version.
  """
  from bertline.components import steps  # in the image: kfp ships this body alone
  start = init_checkpoint
  if pretrained is not None:
    init_checkpoint, start = steps.pretrained_checkpoint(pretrained.path), pretrained.path
  key = steps.training_key(examples.path, fingerprint, init_checkpoint, train_settings,
                           warm_start_from)
  trained = steps.production_training(production_model, key)
  if trained:
    steps.reuse_training(trained, model.path)
    model.metadata.update({"reused_from": trained})
  else:
    used = steps.train(examples.path, model.path, start, train_settings, warm_start_from)
    model.metadata.update({"init_checkpoint": used})
  model.metadata.update({"framework": "tensorflow", "training_key": key})
  return key


def distill(examples: Input[Dataset], teacher: Input[Model], fingerprint: str,
            teacher_key: str, distill_settings: dict, model: Output[Model]) -> str:
  """`bertline distill`: a student of the train task's model into `model` (resumable).

  Args:
    teacher: the train task's model_dir.
    teacher_key: its training key (part of the student's).
    distill_settings: the student's TrainConfig keys (student_layers, temperature, alpha, ...).
  Returns:
    The student's training key (steps.distill_key), which export and push compare.
  """
  from bertline.components import steps  # in the image: kfp ships this body alone
  key = steps.distill_key(examples.path, fingerprint, teacher_key, distill_settings)
  steps.distill(examples.path, teacher.path, model.path, distill_settings)
  model.metadata.update({"teacher": teacher.path, "framework": "tensorflow",
                         "training_key": key})
  return key


def evaluate(examples: Input[Dataset], model: Input[Model], evaluate_settings: dict,
             baseline_model: str, metrics: Output[Metrics],
             confusion: Output[ClassificationMetrics], evaluation: Output[Artifact]) -> bool:
  """`bertline evaluate` and the blessing.

  Args:
    evaluate_settings: the run config's evaluate section as EvaluateConfig's
      keys (split, thresholds, max_regression, ...), checked by that class here.
    baseline_model: the model in production to compare with ("" for none).
    metrics: scalar metrics and per-class precision/recall/f1/support, shown in the
      Kubeflow UI.
    confusion: the confusion matrix and, for binary tasks, the ROC curve (UI).
    evaluation: metrics.json and blessing.json.
  Returns:
    Whether the model is blessed: export and push run only then. (A plain
    return value, output "Output": kfp 2.17's local runner resolves dsl.If
    conditions on that name only.)
  """
  from bertline.components import steps  # in the image: kfp ships this body alone
  result = steps.evaluate(model.path, examples.path, evaluation.path, evaluate_settings,
                          baseline_model)
  for name, value in {**steps.scalar_metrics(result.metrics),
                      **steps.per_class_metrics(result.metrics)}.items():
    metrics.log_metric(name, value)
  matrix = steps.confusion(result.metrics, model.path)
  if matrix:  # single-label tasks (a multi-label one logs per-label metrics instead)
    confusion.log_confusion_matrix(*matrix)
  roc = result.metrics.get("roc_curve")
  if roc:  # binary tasks: the Kubeflow UI draws it
    confusion.log_roc_curve(roc["fpr"], roc["tpr"], roc["thresholds"])
  evaluation.metadata.update({"blessed": result.blessed, "reasons": result.blessing["reasons"],
                              "baseline_model": baseline_model})
  return result.blessed


def export_push(examples: Input[Dataset], model: Input[Model], evaluation: Input[Artifact],
                push_to: str, training_key: str, export_settings: dict, push_settings: dict,
                exported: Output[Model]) -> str:
  """`bertline export` then `bertline push`; runs only for a blessed model.

  Args:
    examples: the preprocess output; its first examples become TF Serving's warmup
      requests, which push replays in a clean process before pushing.
    evaluation: the evaluate step's output (its blessing travels with the model).
    push_to: gs://bucket/models/NAME or a directory.
    training_key: the train task's key: when the last pushed version has it,
      this model is already in production and nothing is exported or pushed.
    export_settings: the run config's export section as ExportConfig's keys
      (quantize, checkpoint, warmup_examples), checked by that class here.
    push_settings: the push section as PushConfig's keys but `to` (force,
      check_serving, vertex_model, vertex_project, vertex_region, ...).
    exported: the versioned SavedModel (raw-text signature).
  Returns:
    The pushed model's path.
  """
  from bertline.components import steps  # in the image: kfp ships this body alone
  outcome = steps.export_and_push(model.path, exported.path, push_to, export_settings,
                                  push_settings, evaluation_dir=evaluation.path,
                                  key=training_key, examples_dir=examples.path)
  exported.metadata.update({"pushed_to": outcome.pushed,
                            "already_pushed": outcome.already_pushed})
  return outcome.pushed


def score(push_to: str, score_settings: dict, date: str, scores: Output[Dataset]) -> str:
  """`bertline score` with the model in production (the last version pushed to `push_to`).

  Args:
    score_settings: the run config's score section as ScoreConfig's keys:
      input (files or globs, gs://) and output, where `{date}` becomes the
      run's date (an output of "" is the `scores` artifact), and how rows are
      read (format, text_a, text_b, id), compression, batch_size, beam_args.
    scores: the predictions (when no output is set), with the run's summary as metadata.
  Returns:
    The directory holding the predictions.
  """
  from bertline.components import steps  # in the image: kfp ships this body alone
  summary = steps.score(push_to, score_settings, date, default_output=scores.path)
  scores.metadata.update({k: summary[k] for k in ("model", "model_version", "rows", "scored",
                                                  "rejected")})
  return summary["output"]


FUNCTIONS = (resolve_data, pretrain_data, pretrain, preprocess, train, distill, evaluate,
             export_push, score)


class Components(NamedTuple):
  resolve_data: object
  pretrain_data: object
  pretrain: object
  preprocess: object
  train: object
  distill: object
  evaluate: object
  export_push: object
  score: object


def make(image: str) -> Components:
  """The components, running in `image` (which has bertline and kfp installed)."""
  return Components(*(dsl.component(func, base_image=image, install_kfp_package=False)
                      for func in FUNCTIONS))
