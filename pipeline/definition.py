"""The pipeline, declared once: its steps, what each takes and gives, when it runs, what caches.

  resolve data -> [pretrain-data -> pretrain ->] preprocess -> train [-> distill] -> evaluate
      -> [blessed] export and push [-> score]   | [not blessed] [score]

Two small runners walk this one declaration (TFX's shape: one pipeline, a
runner per orchestrator): pipeline/pipeline.py compiles it into the kfp
pipeline that Kubeflow and Vertex AI run, and pipeline/local_run.py runs it
on this machine (`bertline run`). Each step is a kfp component of
components/kfp_components.py; a step's inputs are pipeline parameters
(`Param`, their values from `parameters(config)`), values fixed by the run
config when the pipeline is built (`Const`), or outputs of earlier steps
(`Out`). Caching is the same rule in both: a step is reused when it is
`cached` and its inputs are unchanged (an artifact input: the step that
made it), and resolve-data, which never caches, hands every later step the
data's fingerprint and the model in production, so no stale result is ever
served. No kfp import here: the config and its checks stay light.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, List, Mapping, Tuple, Union

from bertline.pipeline import config as config_lib


@dataclasses.dataclass(frozen=True)
class Param:
  """A pipeline parameter: a submission or a schedule may set it."""
  name: str


@dataclasses.dataclass(frozen=True)
class Const:
  """A value of the run config, fixed when the pipeline is built."""
  name: str


@dataclasses.dataclass(frozen=True)
class Out:
  """An output of an earlier step; with several step ids, the first that the pipeline has.

  optional: the input is left out (the component's default, None) when none of the steps
  is in the pipeline: train's pre-trained model, without a pretrain section.
  """
  steps: Tuple[str, ...]
  name: str
  optional: bool = False

  def __init__(self, steps: Union[str, Tuple[str, ...]], name: str, optional: bool = False):
    object.__setattr__(self, "steps", (steps,) if isinstance(steps, str) else tuple(steps))
    object.__setattr__(self, "name", name)
    object.__setattr__(self, "optional", optional)


Source = Union[Param, Const, Out]

# The output a component's plain return value is called (kfp's name for it).
RETURNED = "Output"
# Which steps run in the blessed branch and which in the other: evaluate's return value.
BLESSED = ("evaluate", RETURNED)


@dataclasses.dataclass(frozen=True)
class Step:
  """One task of the pipeline.

  Attributes:
    id: str. The step's name in this declaration (and in `bertline run`'s logs).
    component: str. The function of components/kfp_components.py it runs.
    inputs: {component parameter: Param | Const | Out}.
    resources: str. The run config's pipeline.<resources> section it runs with.
    display: str. Its name in the Kubeflow UI and in `bertline run`'s logs.
    cached: bool. Reused when its inputs are unchanged (and pipeline.caching is on).
    when: str. "" always; "blessed" or "not blessed": on evaluate's decision.
    only_if: str. "" always; "pretrain", "distill" or "score": only when the run config has
      that section.
    after: tuple of step ids it waits for without taking their outputs.
    resumes: bool. A step interrupted mid-way resumes from its own output
      (train's model_dir); `bertline run` keeps an unfinished output then,
      and clears it for every other step.
    local_dir: str. `bertline run`'s folder of the step's outputs, under the work dir.
  """
  id: str
  component: str
  inputs: Mapping[str, Source]
  resources: str
  display: str = ""
  cached: bool = True
  when: str = ""
  only_if: str = ""
  after: Tuple[str, ...] = ()
  resumes: bool = False
  local_dir: str = ""

  @property
  def title(self) -> str:
    return self.display or self.id


_RESOLVED = "resolve-data"
_MODEL = ("distill", "train")  # the model evaluated and pushed: the student, when there is one
_SCORE_INPUTS = {"push_to": Param("push_to"), "score_settings": Const("score_settings"),
                 "date": Out(_RESOLVED, "date")}

STEPS: Tuple[Step, ...] = (
    # Never cached: it is what makes every later cache key honest.
    Step(_RESOLVED, "resolve_data", {
        "data_path": Param("data_path"), "builtin": Param("builtin_data"),
        "limit": Param("data_limit"), "task": Param("task"), "task_config": Param("task_config"),
        "run_date": Param("run_date"), "push_to": Param("push_to"),
        "warm_start": Param("warm_start"), "baseline": Param("baseline"),
        "reuse_trained": Param("reuse_trained"), "pretrain_input": Param("pretrain_input")},
        resources="preprocess", display="resolve data", cached=False, local_dir="data"),
    # Domain-adaptive pre-training: unlabeled text (and the labeled train split's texts) ->
    # masked-LM records -> a pre-trained model, which train then fine-tunes.
    Step("pretrain-data", "pretrain_data", {
        "corpus": Out(_RESOLVED, "corpus"), "builtin": Param("builtin_data"),
        "data_dir": Out(_RESOLVED, "data_dir"), "task": Out(_RESOLVED, "task"),
        "task_config": Out(_RESOLVED, "task_config"),
        "fingerprint": Out(_RESOLVED, "fingerprint"),
        "pretrain_input": Param("pretrain_input"),
        "pretrain_fingerprint": Out(_RESOLVED, "pretrain_fingerprint"),
        "labeled_texts": Param("pretrain_labeled_texts"),
        "init_checkpoint": Param("init_checkpoint"), "vocab_file": Param("vocab_file"),
        "do_lower_case": Param("do_lower_case"),
        "pretrain_data_settings": Param("pretrain_data_settings")},
        resources="preprocess", display="pretrain data", only_if="pretrain",
        local_dir="pretrain-data"),
    Step("pretrain", "pretrain", {
        "pretrain_data": Out("pretrain-data", "pretrain_data"),
        "data_key": Out("pretrain-data", RETURNED), "init_checkpoint": Param("init_checkpoint"),
        "pretrain_settings": Param("pretrain_settings")},
        resources="train", only_if="pretrain", resumes=True, local_dir="pretrained"),
    Step("preprocess", "preprocess", {
        "corpus": Out(_RESOLVED, "corpus"), "builtin": Param("builtin_data"),
        "data_dir": Out(_RESOLVED, "data_dir"), "task": Out(_RESOLVED, "task"),
        "task_config": Out(_RESOLVED, "task_config"),
        "fingerprint": Out(_RESOLVED, "fingerprint"), "init_checkpoint": Param("init_checkpoint"),
        "vocab_file": Param("vocab_file"), "preprocess_settings": Param("preprocess_settings")},
        resources="preprocess", local_dir="examples"),
    Step("train", "train", {
        "examples": Out("preprocess", "examples"), "fingerprint": Out(_RESOLVED, "fingerprint"),
        "init_checkpoint": Param("init_checkpoint"), "train_settings": Param("train_settings"),
        "warm_start_from": Out(_RESOLVED, "warm_start_from"),
        "production_model": Out(_RESOLVED, "production_model"),
        "pretrained": Out("pretrain", "model", optional=True)},
        resources="train", resumes=True, local_dir="model"),
    Step("distill", "distill", {
        "examples": Out("preprocess", "examples"), "teacher": Out("train", "model"),
        "fingerprint": Out(_RESOLVED, "fingerprint"), "teacher_key": Out("train", RETURNED),
        "distill_settings": Param("distill_settings")},
        resources="train", only_if="distill", resumes=True, local_dir="student"),
    Step("evaluate", "evaluate", {
        "examples": Out("preprocess", "examples"), "model": Out(_MODEL, "model"),
        "evaluate_settings": Param("evaluate_settings"),
        "baseline_model": Out(_RESOLVED, "baseline_model")},
        resources="evaluate", local_dir="evaluation"),
    # Never cached: the registry, not a cache entry, says whether a model is there.
    Step("export-push", "export_push", {
        "examples": Out("preprocess", "examples"), "model": Out(_MODEL, "model"),
        "evaluation": Out("evaluate", "evaluation"), "push_to": Param("push_to"),
        "training_key": Out(_MODEL, RETURNED), "export_settings": Param("export_settings"),
        "push_settings": Param("push_settings")},
        resources="push", display="export and push", cached=False, when="blessed",
        local_dir="export"),
    # Scoring is never cached: it scores the date's rows with today's production model,
    # this run's when it was blessed and pushed, else the one already there.
    Step("score", "score", _SCORE_INPUTS, resources="score", cached=False, when="blessed",
         only_if="score", after=("export-push",), local_dir="scores"),
    Step("score-with-production-model", "score", _SCORE_INPUTS, resources="score",
         display="score", cached=False, when="not blessed", only_if="score", local_dir="scores"),
)


def parameters(config: config_lib.RunConfig) -> Dict[str, Any]:
  """The pipeline's run-time parameters from a config (submission arguments).

  A stage's settings travel as one dict, its section's (`*_settings`): the
  component builds the stage's own config class from it on the worker, which
  checks them again. push.to travels alone: resolve-data and score read the
  registry too.
  """
  d = config.data
  push = {k: v for k, v in config.stage_settings("push").items() if k != "to"}
  return {
      "data_path": d.path, "builtin_data": d.builtin, "data_limit": d.limit, "task": d.task,
      "task_config": d.task_config, "run_date": "",
      "init_checkpoint": config.model.init_checkpoint, "vocab_file": config.model.vocab_file,
      "preprocess_settings": d.preprocess_settings(),
      "pretrain_input": list(config.pretrain.input),
      "pretrain_labeled_texts": config.pretrain.labeled_texts,
      "do_lower_case": d.do_lower_case,
      "pretrain_data_settings": config.pretrain.data_settings(),
      "pretrain_settings": config.pretrain.train_settings(),
      "train_settings": config.train_settings(), "warm_start": config.warm_start,
      # With caching on, a run that would train the model in production again reuses it.
      "reuse_trained": config.pipeline.caching,
      "distill_settings": config.distill_settings(),
      "evaluate_settings": config.stage_settings("evaluate"),
      "baseline": config.evaluate.baseline, "push_to": config.push.to,
      "export_settings": config.stage_settings("export"), "push_settings": push,
  }


def constants(config: config_lib.RunConfig) -> Dict[str, Any]:
  """The values fixed when the pipeline is built: the score section's (it adds steps)."""
  return {"score_settings": config.stage_settings("score")}


def _has_section(config: config_lib.RunConfig, name: str) -> bool:
  return {"": True, "pretrain": config.pretrain.enabled, "distill": bool(config.distill),
          "score": bool(config.score.input)}[name]


def steps(config: config_lib.RunConfig) -> List[Step]:
  """The steps of `config`'s pipeline, in order (the distill and score steps when configured)."""
  return [step for step in STEPS if _has_section(config, step.only_if)]


def producer(source: Out, present: Mapping[str, Any]) -> str:
  """The id of the step an Out comes from: the first of its steps the pipeline has ("" for an
  optional input none of whose steps is there)."""
  for step_id in source.steps:
    if step_id in present:
      return step_id
  if source.optional:
    return ""
  raise KeyError(f"no step of {source.steps} runs before the one taking {source.name!r}")
