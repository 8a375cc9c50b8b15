"""`bertline export`'s and `bertline push`'s settings: the one declaration of each.

From these classes come the commands' flags (bertline/flags.py), the run
config's `export:` and `push:` sections (pipeline/config.py) and the kfp
export-and-push component's `export_settings` and `push_settings`
parameters, checked by the same classes again on the worker. Light on
purpose (no TensorFlow): `--help` and the pipeline's config checks stay
instant.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import ClassVar, Optional, Tuple

from bertline import configs, flags, schema
from bertline.configs import SettingError, setting
from bertline.exporter import vertex_registry

EXPORT_FORMATS = ("saved_model", "huggingface")
QUANTIZE_MODES = ("none", "float16", "int8")
# How long push's clean serving process may take to load a version and answer its requests.
DEFAULT_SERVING_TIMEOUT_S = 600.0


def version_flag(text: str) -> int:
  """--version: ASCII digits only (int() would also read "٣" as 3)."""
  if not schema.is_version(text):
    raise argparse.ArgumentTypeError(f"{text!r} is not a version: use ASCII digits, e.g. 3")
  return int(text)


@dataclasses.dataclass
class ExportConfig:
  """Everything an export depends on (flags: the same names, with dashes)."""

  # What each pipeline run sets itself: not run-config keys.
  RUN_KEYS: ClassVar[Tuple[str, ...]] = ("model_dir", "export_dir", "version", "blessing",
                                         "warmup_data")

  model_dir: str = setting("", "training model_dir", required=True)
  export_dir: str = setting("", "local base directory of versions (TF Serving's model base "
                            "path)", required=True)
  version: Optional[int] = setting(
      None, "version number (default: seconds since the epoch); an existing version is refused",
      minimum=0, parse=version_flag)
  checkpoint: str = setting("best", "which checkpoint (best, else latest)", choices=schema.CHECKPOINT_CHOICES)
  blessing: str = setting("", "blessing.json to store with the export (default: "
                          "<model-dir>/blessing.json when present); push reads it")
  warmup_data: str = setting(
      "", "preprocess output whose first examples become TF Serving's warmup requests "
      "(assets.extra/tf_serving_warmup_requests; default: the training data named in the "
      "model_dir's train_config.json)")
  warmup_examples: int = setting(8, "how many examples the warmup requests carry", minimum=1,
                                 below="{key} {value} must be at least 1")
  quantize: str = setting(
      "none", "none: a float32 SavedModel for TF Serving / Vertex AI. float16 or int8: the "
      "classifier as TensorFlow Lite (model.tflite, int8 = dynamic-range: about 1/4 of the size "
      "and 2-3x faster on CPU) beside a tokenizer SavedModel; served by bertline predict/score "
      "and TF Lite, not by TF Serving", choices=QUANTIZE_MODES)
  format: str = setting(
      "saved_model", "saved_model: a versioned SavedModel serving raw text (TF Serving, Vertex "
      "AI). huggingface: config.json + model.safetensors + vocab.txt at --export-dir itself, "
      "for transformers' from_pretrained (a `bertline pretrain` model_dir: BertForPreTraining; "
      "a classifier: BertForSequenceClassification)", choices=EXPORT_FORMATS)

  def __post_init__(self):
    configs.check_settings(self)
    if self.format == "huggingface" and self.quantize != "none":
      raise configs.SettingError("quantize", "{key} applies to SavedModel exports; drop it with "
                                 "{field:format} huggingface.")


@dataclasses.dataclass
class PushConfig:
  """Everything a push depends on (flags: the same names, with dashes, but --project/--region)."""

  RUN_KEYS: ClassVar[Tuple[str, ...]] = ("model", "blessing")

  model: str = setting("", "exported version directory, e.g. export/1700000000 (from bertline "
                       "export)", required=True)
  to: str = setting("", "registry base: gs://bucket/models/NAME, file:///path or /local/path; the "
                    "model goes to <to>/<version>", required=True)
  blessing: str = setting("", "blessing.json from bertline evaluate (default: "
                          "<model>/assets.extra/blessing.json, stored there by bertline export)")
  force: bool = setting(False, "push even without a positive blessing (recorded in the push "
                        "record); a version that fails the serving check is never pushed")
  check_serving: bool = setting(
      True, "replay the version's TF Serving warmup requests in a clean process before pushing "
      "(turning it off is recorded in the push record)", off_flag="--skip-serving-check")
  serving_timeout: float = setting(DEFAULT_SERVING_TIMEOUT_S,
                                   "seconds the clean serving process may take")
  # Vertex AI Model Registry: register the pushed version (needs `to` in gs:// and the
  # `vertex` extra). --project and --region are the Google Cloud flags of every command.
  vertex_model: str = setting("", "Vertex AI model ID the version is registered under (created "
                              "by the first push, a new version by every later one)",
                              metavar="MODEL_ID")
  vertex_project: str = setting("", "Google Cloud project (with --vertex-model)", flag="--project")
  vertex_region: str = setting("", "Vertex AI region, e.g. europe-west4 (with --vertex-model)",
                               flag="--region")
  vertex_display_name: str = setting("", "the model's display name (default: MODEL_ID)")
  vertex_serving_image: str = setting(
      "", "serving container (default: Vertex's prebuilt TensorFlow "
      f"{vertex_registry.DEFAULT_TF_SERVING_VERSION} CPU image for the region)")
  vertex_endpoint: str = setting("", "Vertex AI API endpoint (default: the region's; for "
                                 "Private Service Connect)")

  def __post_init__(self):
    configs.check_settings(self)
    if self.serving_timeout <= 0:
      raise SettingError("serving_timeout", f"{{key}} {self.serving_timeout:g} must be positive")
    if not self.vertex_model:
      return
    if not vertex_registry.is_model_id(self.vertex_model):
      raise SettingError("vertex_model", f"{{key}} {self.vertex_model!r}: "
                         f"{vertex_registry.MODEL_ID_RULE}")
    if self.to and not self.to.startswith("gs://"):
      raise SettingError("vertex_model", f"{{key}} needs {{field:to}} in Cloud Storage "
                         f"(gs://BUCKET/models/NAME), not {self.to!r}: Vertex AI serves models "
                         "from Cloud Storage")
    missing = [f"{{field:{name}}}" for name in ("vertex_project", "vertex_region")
               if not getattr(self, name)]
    if missing:
      raise SettingError("vertex_model", f"{{key}} needs {' and '.join(missing)}, e.g. "
                         "{field:vertex_project} my-project {field:vertex_region} europe-west4")

  def vertex(self) -> Optional[vertex_registry.VertexModel]:
    """Where the pushed version is registered in Vertex AI (None: not registered)."""
    if not self.vertex_model:
      return None
    return vertex_registry.VertexModel(
        model_id=self.vertex_model, project=self.vertex_project, region=self.vertex_region,
        display_name=self.vertex_display_name, serving_image=self.vertex_serving_image,
        endpoint=self.vertex_endpoint)


# --- The commands' flags, here so that `--help` and a misspelled flag answer without TensorFlow
# (bertline/cli.py parses with these before it imports the stage).

def export_parser() -> flags.ArgumentParser:
  return flags.config_parser(
      ExportConfig, "bertline export",
      description="Write <export-dir>/<version>/, a SavedModel with signatures serving_default "
      "(raw text, tokenized in the graph), serve_features, serve_examples and classification "
      "(TF Serving's Classify API), plus TF Serving warmup requests built from real examples, "
      "for TF Serving or Vertex AI.",
      epilog="example:\n  bertline export --model-dir work/model --export-dir work/export")


def push_parser() -> flags.ArgumentParser:
  return flags.config_parser(
      PushConfig, "bertline push",
      description="Copy an exported model version (E/<version>) to gs://bucket/path/<version> or "
      "a local directory, only if blessed, never overwriting a pushed version; a completion "
      f"marker ({schema.PUSH_COMPLETE_MARKER}) is written last. Uses Application Default "
      "Credentials.\n\nVertex AI Model Registry: --vertex-model registers the pushed version "
      "(needs --to gs://... and pip install -e '.[vertex]').",
      epilog="example:\n  bertline push --model work/export/1700000000 --to registry/sentiment")
