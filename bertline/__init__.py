"""bertline: BERT text classifiers trained, judged and shipped as a pipeline.

    import bertline
    bertline.preprocess(bertline.PreprocessConfig(...))
    bertline.train(bertline.TrainConfig(...))
    bertline.evaluate(bertline.EvaluateConfig("work/model", "work/data"))
    version = bertline.export(bertline.ExportConfig("work/model", "work/export"))
    pushed = bertline.push(bertline.PushConfig(version, "registry/sentiment"))
    bertline.load(pushed)(["what a day"])

Each name but __version__ comes from bertline/api.py (the stages) or a
stage's config module, loaded when first used: `import bertline` (and
`bertline --help`) must not load TensorFlow, and the configs never do.
"""

import importlib

__version__ = "0.1.0"

_API = ("PreprocessConfig", "TrainConfig", "EvaluateConfig", "PredictConfig", "ExportConfig",
        "PushConfig", "ScoreConfig", "RunConfig", "Classifier", "Prediction", "preprocess", "train",
        "distill", "evaluate", "predict", "export", "push", "score", "run", "load", "minilm_dir")
__all__ = ["__version__", *_API]


# Names that live in light modules (no TensorFlow): a notebook can build and check a config, and
# a shell's `python -c` can ask for the packaged MiniLM, before any stage is loaded.
_LIGHT = {"PreprocessConfig": "bertline.preprocessing.config",
          "TrainConfig": "bertline.trainer.config",
          "EvaluateConfig": "bertline.evaluator.config",
          "PredictConfig": "bertline.evaluator.config",
          "ScoreConfig": "bertline.evaluator.config",
          "ExportConfig": "bertline.exporter.config",
          "PushConfig": "bertline.exporter.config",
          "RunConfig": "bertline.pipeline.config",
          "minilm_dir": "bertline.resources"}


def __getattr__(name):
  if name in _LIGHT:
    return getattr(importlib.import_module(_LIGHT[name]), name)
  if name in _API:
    # Deferred: the stages load TensorFlow, and `import bertline` (and `bertline --help`) must not.
    return getattr(importlib.import_module("bertline.api"), name)
  raise AttributeError(f"module 'bertline' has no attribute {name!r}")


def __dir__():
  return sorted(__all__)
