"""The Kubeflow pipeline: resolve data -> preprocess -> train [-> distill] -> evaluate ->
[blessed] export+push.

The function only wires steps (components/kfp_components.py); the run config
(pipeline/config.py) gives the image, each task's resources, retries and
caching, and the defaults of the pipeline's parameters, which a submission or
a schedule may override.

Caching never serves a stale result: resolve_data runs every time (no cache)
and hands the steps after it a fingerprint of the data files and the path of
the model in production, so their cache keys change whenever either does. A
data path with `{date}` reads a new prefix each day.
"""

from typing import Any, Callable, Dict

from kfp import dsl

from bertline.components import kfp_components
from bertline.pipeline import config as config_lib

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


def _score(ops, config: config_lib.RunConfig, push_to, date) -> dsl.PipelineTask:
  """The score task (never cached: it scores the date's data with today's production model)."""
  sc = config.score
  task = ops.score(push_to=push_to, input_pattern=sc.input, output=sc.output, date=date,
                   input_format=sc.format, text_a=sc.text_a, text_b=sc.text_b, id_key=sc.id,
                   compression=sc.compression, batch_size=sc.batch_size,
                   beam_args=list(sc.beam_args)).set_display_name("score")
  return _apply(task, config.pipeline.score, caching=False)


def parameters(config: config_lib.RunConfig) -> Dict[str, Any]:
  """The pipeline's run-time parameters from a config (submission arguments)."""
  d, e = config.data, config.evaluate
  return {
      "data_path": d.path, "builtin_data": d.builtin, "data_limit": d.limit, "task": d.task,
      "task_config": d.task_config, "run_date": "",
      "init_checkpoint": config.model.init_checkpoint, "vocab_file": config.model.vocab_file,
      "preprocess_settings": d.preprocess_settings(),
      "train_settings": config.train_settings(), "warm_start": config.warm_start,
      "eval_split": e.split, "thresholds": dict(e.thresholds), "baseline": e.baseline,
      "max_regression": e.max_regression, "push_to": config.push.to,
      "force_push": config.push.force, "check_serving": config.push.check_serving,
      "vertex_model": config.push.vertex_model, "vertex_project": config.push.vertex_project,
      "vertex_region": config.push.vertex_region, "quantize": config.export.quantize,
      "distill_settings": config.distill_settings(),
  }


def build(config: config_lib.RunConfig) -> Callable:
  """The pipeline function for `config`'s image and resources; its defaults are `config`'s."""
  ops = kfp_components.make(config.pipeline.image)
  p = config.pipeline
  defaults = parameters(config)

  @dsl.pipeline(name=p.name, description=PIPELINE_DESCRIPTION,
                pipeline_root=p.pipeline_root or None)
  def bertline_pipeline(
      data_path: str = defaults["data_path"],
      builtin_data: str = defaults["builtin_data"],
      data_limit: int = defaults["data_limit"],
      task: str = defaults["task"],
      task_config: str = defaults["task_config"],
      run_date: str = defaults["run_date"],
      init_checkpoint: str = defaults["init_checkpoint"],
      vocab_file: str = defaults["vocab_file"],
      preprocess_settings: dict = defaults["preprocess_settings"],
      train_settings: dict = defaults["train_settings"],
      warm_start: bool = defaults["warm_start"],
      eval_split: str = defaults["eval_split"],
      thresholds: dict = defaults["thresholds"],
      baseline: str = defaults["baseline"],
      max_regression: float = defaults["max_regression"],
      push_to: str = defaults["push_to"],
      force_push: bool = defaults["force_push"],
      check_serving: bool = defaults["check_serving"],
      vertex_model: str = defaults["vertex_model"],
      vertex_project: str = defaults["vertex_project"],
      vertex_region: str = defaults["vertex_region"],
      quantize: str = defaults["quantize"],
      distill_settings: dict = defaults["distill_settings"],
  ):
    data = ops.resolve_data(
        data_path=data_path, builtin=builtin_data, limit=data_limit, task=task,
        task_config=task_config, run_date=run_date, push_to=push_to,
        warm_start=warm_start, baseline=baseline).set_display_name("resolve data")
    # Always re-run: it is what makes every later cache key honest.
    _apply(data, p.preprocess, caching=False)

    examples = ops.preprocess(
        corpus=data.outputs["corpus"], builtin=builtin_data, data_dir=data.outputs["data_dir"],
        task=data.outputs["task"], task_config=data.outputs["task_config"],
        fingerprint=data.outputs["fingerprint"], init_checkpoint=init_checkpoint,
        vocab_file=vocab_file,
        preprocess_settings=preprocess_settings).set_display_name("preprocess")
    _apply(examples, p.preprocess, p.caching)

    trained = ops.train(
        examples=examples.outputs["examples"], fingerprint=data.outputs["fingerprint"],
        init_checkpoint=init_checkpoint, train_settings=train_settings,
        warm_start_from=data.outputs["warm_start_from"]).set_display_name("train")
    _apply(trained, p.train, p.caching)

    model, key = trained.outputs["model"], trained.outputs["Output"]
    if config.distill:  # the student is evaluated, blessed and pushed
      student = ops.distill(
          examples=examples.outputs["examples"], teacher=model,
          fingerprint=data.outputs["fingerprint"], teacher_key=key,
          distill_settings=distill_settings).set_display_name("distill")
      _apply(student, p.train, p.caching)
      model, key = student.outputs["model"], student.outputs["Output"]

    evaluated = ops.evaluate(
        examples=examples.outputs["examples"], model=model, split=eval_split,
        thresholds=thresholds, baseline_model=data.outputs["baseline_model"],
        max_regression=max_regression).set_display_name("evaluate")
    _apply(evaluated, p.evaluate, p.caching)

    blessed = evaluated.outputs["Output"]
    with dsl.If(blessed == True, name="blessed"):  # noqa: E712 (a kfp condition, not Python's)
      pushed = ops.export_push(
          examples=examples.outputs["examples"], model=model,
          evaluation=evaluated.outputs["evaluation"], push_to=push_to, force=force_push,
          training_key=key, check_serving=check_serving,
          vertex_model=vertex_model, vertex_project=vertex_project,
          vertex_region=vertex_region, quantize=quantize).set_display_name("export and push")
      # Never cached: the registry, not a cache entry, says whether a model is there.
      _apply(pushed, p.push, caching=False)
      if config.score.input:
        _score(ops, config, push_to, data.outputs["date"]).after(pushed)
    if config.score.input:
      with dsl.Else(name="not blessed"):
        _score(ops, config, push_to, data.outputs["date"])  # with the model already in production

  return bertline_pipeline
