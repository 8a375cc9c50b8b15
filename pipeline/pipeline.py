"""The Kubeflow pipeline, compiled from the one declaration of the pipeline (definition.py).

The function only wires definition.STEPS' components (components/kfp_components.py); the run config
(pipeline/config.py) gives the image, each task's resources, retries and
caching, and the defaults of the pipeline's parameters, which a submission or
a schedule may override.

Caching never serves a stale result: resolve_data runs every time (no cache)
and hands the steps after it a fingerprint of the data files and the path of
the model in production, so their cache keys change whenever either does. A
data path with `{date}` reads a new prefix each day.
"""

import inspect
import typing
from typing import Callable, Dict

from kfp import dsl

from bertline.components import kfp_components
from bertline.pipeline import config as config_lib
from bertline.pipeline import definition
from bertline.pipeline.definition import parameters  # noqa: F401  (submit's, and the tests')

PIPELINE_DESCRIPTION = ("bertline: fine-tune a BERT-family text classifier — Beam preprocess, "
                        "TF2 train, evaluate with a blessing, export and push when blessed.")


def _apply(task: dsl.PipelineTask, res: config_lib.StepResources, caching: bool) -> dsl.PipelineTask:
  """Sets one task's CPU/memory, accelerator, retries and caching."""
  task.set_cpu_request(res.cpu).set_cpu_limit(res.cpu)
  task.set_memory_request(res.memory).set_memory_limit(res.memory)
  if res.accelerator_type:
    task.set_accelerator_type(res.accelerator_type).set_accelerator_limit(res.accelerator_count)
  if res.retries:
    # Preemption kills the pod; the retried task resumes from its model_dir.
    task.set_retry(num_retries=res.retries, backoff_duration="60s", backoff_factor=2.0)
  task.set_caching_options(caching)
  return task


def build(config: config_lib.RunConfig) -> Callable:
  """The kfp pipeline function of `config`: definition.STEPS, its image and resources.

  Its parameters are definition.parameters(config) (their defaults are the
  config's values, which a submission or a schedule may override), typed as
  the components take them.
  """
  ops = kfp_components.make(config.pipeline.image)
  p = config.pipeline
  defaults = definition.parameters(config)
  constants = definition.constants(config)
  steps = definition.steps(config)

  def bertline_pipeline(*channels):
    params = dict(zip(defaults, channels))
    tasks: Dict[str, dsl.PipelineTask] = {}

    def add(step: definition.Step) -> None:
      args = {}
      for name, source in step.inputs.items():
        if isinstance(source, definition.Param):
          args[name] = params[source.name]
        elif isinstance(source, definition.Const):
          args[name] = constants[source.name]
        elif definition.producer(source, tasks):  # an optional input without its step: left out
          args[name] = tasks[definition.producer(source, tasks)].outputs[source.name]
      task = getattr(ops, step.component)(**args).set_display_name(step.title)
      for other in step.after:
        task.after(tasks[other])
      tasks[step.id] = _apply(task, getattr(p, step.resources), p.caching and step.cached)

    for step in steps:
      if not step.when:
        add(step)
    blessed = [s for s in steps if s.when == "blessed"]
    others = [s for s in steps if s.when == "not blessed"]
    decision = tasks[definition.BLESSED[0]].outputs[definition.BLESSED[1]]
    with dsl.If(decision == True, name="blessed"):  # noqa: E712 (a kfp condition, not Python's)
      for step in blessed:
        add(step)
    if others:
      with dsl.Else(name="not blessed"):
        for step in others:
          add(step)

  bertline_pipeline.__signature__ = inspect.Signature([
      inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=value,
                        annotation=_parameter_types()[name])
      for name, value in defaults.items()])
  return dsl.pipeline(name=p.name, description=PIPELINE_DESCRIPTION,
                      pipeline_root=p.pipeline_root or None)(bertline_pipeline)


def _parameter_types() -> Dict[str, type]:
  """Each pipeline parameter's type: that of the component parameters it feeds."""
  types: Dict[str, type] = {}
  for step in definition.STEPS:
    hints = typing.get_type_hints(getattr(kfp_components, step.component))
    for name, source in step.inputs.items():
      if isinstance(source, definition.Param):
        known = types.setdefault(source.name, hints[name])
        if known is not hints[name]:
          raise TypeError(f"pipeline parameter {source.name} feeds {known} and {hints[name]}")
  return types
