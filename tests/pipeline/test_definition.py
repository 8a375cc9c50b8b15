"""pipeline/definition.py: the one declaration of the DAG is well wired — every step feeds its
component exactly the parameters it takes, from earlier steps' real outputs and from the
pipeline's parameters — and configured sections add exactly their steps."""

import inspect
import typing

import pytest
from kfp.dsl.types.type_annotations import OutputAnnotation

from bertline.components import kfp_components
from bertline.pipeline import config as config_lib
from bertline.pipeline import definition

def _output_parameters(component) -> set:
  return {name for name, p in inspect.signature(component).parameters.items()
          if OutputAnnotation in typing.get_args(p.annotation)}


def _outputs(component) -> set:
  """What a component gives: its Output[...] parameters and its return value's names."""
  signature = inspect.signature(component)
  names = _output_parameters(component)
  returned = signature.return_annotation
  if returned is inspect.Signature.empty:
    return names
  fields = getattr(returned, "_fields", None)
  return names | (set(fields) if fields else {definition.RETURNED})


def _full_config():
  """Every optional section on: the pretrain, distill and both score steps are in the pipeline."""
  return config_lib.defaults(["pretrain.labeled_texts=true", "distill={student_layers: 3}",
                              "score.input=gs://b/rows/{date}/*.tsv",
                              "score.output=gs://b/scores/{date}"])


def test_every_step_gives_its_component_exactly_its_parameters_from_real_sources():
  config = _full_config()
  steps = definition.steps(config)
  assert [s.id for s in steps] == [s.id for s in definition.STEPS]  # all of them, in order
  parameters, constants = definition.parameters(config), definition.constants(config)
  used = set()
  present = {}
  for step in steps:
    component = getattr(kfp_components, step.component)
    signature = inspect.signature(component)
    takes = set(signature.parameters) - _output_parameters(component)
    assert set(step.inputs) == takes, step.id
    for name, source in step.inputs.items():
      if isinstance(source, definition.Param):
        assert source.name in parameters, (step.id, name)
        used.add(source.name)
      elif isinstance(source, definition.Const):
        assert source.name in constants, (step.id, name)
      else:  # an earlier step's output, one the producing component really gives
        producer = definition.producer(source, present)
        assert source.name in _outputs(getattr(kfp_components, present[producer])), \
            (step.id, name, producer)
    present[step.id] = step.component
    assert isinstance(getattr(config.pipeline, step.resources), config_lib.StepResources), step.id
  # No pipeline parameter is declared that no step reads.
  assert used == set(parameters)


def test_optional_sections_add_their_steps_and_the_student_is_what_is_evaluated():
  plain = definition.steps(config_lib.defaults())
  assert [s.id for s in plain] == ["resolve-data", "preprocess", "train", "evaluate",
                                   "export-push"]
  full = {s.id: s for s in definition.steps(_full_config())}
  assert {"pretrain-data", "pretrain", "distill", "score", "score-with-production-model"} <= \
      set(full)
  # Train fine-tunes the pre-trained model when there is one; without, the input is left out.
  pretrained = full["train"].inputs["pretrained"]
  assert definition.producer(pretrained, full) == "pretrain"
  assert definition.producer(pretrained, {s.id: s for s in plain}) == ""
  assert inspect.signature(kfp_components.train).parameters["pretrained"].default is None
  model = full["evaluate"].inputs["model"]
  assert definition.producer(model, full) == "distill"
  assert definition.producer(model, {s.id: s for s in plain}) == "train"
  with pytest.raises(KeyError, match="no step of"):
    definition.producer(model, {})
  # The blessed decision splits the two branches; uncached steps are the ones that must
  # look at the world (the data, the registry) on every run.
  assert {s.id for s in full.values() if s.when == "blessed"} == {"export-push", "score"}
  assert {s.id for s in full.values() if s.when == "not blessed"} == \
      {"score-with-production-model"}
  assert {s.id for s in full.values() if not s.cached} == \
      {"resolve-data", "export-push", "score", "score-with-production-model"}


def test_a_stage_section_travels_as_its_own_settings_dict():
  config = config_lib.defaults(["evaluate.thresholds={eval_accuracy: 0.7}", "export.quantize=int8"])
  parameters = definition.parameters(config)
  assert parameters["evaluate_settings"]["thresholds"] == {"eval_accuracy": 0.7}
  assert parameters["export_settings"]["quantize"] == "int8"
  assert "to" not in parameters["push_settings"] and parameters["push_to"] == config.push.to
