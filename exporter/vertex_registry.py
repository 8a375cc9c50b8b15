"""Registering a pushed version in the Vertex AI Model Registry.

    bertline push --model export/1700000000 --to gs://bucket/models/sentiment \\
        --vertex-model sentiment --project my-project --region europe-west4

After a push to Cloud Storage, the version becomes a version of one Vertex AI
model (`--vertex-model`, the parent: created by the first push, every later
push adds a version under it, so versions line up with the registry's),
served by Vertex's prebuilt TensorFlow container from the pushed directory.
Its labels carry the evaluation metrics and the blessing (label values allow
only lowercase letters, digits, "_" and "-": 0.7160 is written 0_7160; the
exact numbers are in the version's description and its
bertline_metadata.json). A blessed version becomes the model's default
version; a forced, unblessed one is registered but never made the default.
Its alias v<version> makes registration idempotent: a version already
registered is found, not registered twice.

Uses google-cloud-aiplatform (the `vertex` extra) with Application Default
Credentials; `endpoint` overrides the regional API endpoint (Private Service
Connect, or a test server).
"""

from __future__ import annotations

import dataclasses
import logging
import re
from typing import Any, Dict, Optional

from google.api_core import exceptions as gexc

from bertline import errors

log = logging.getLogger("bertline.push")

VERTEX_PACKAGE = "google-cloud-aiplatform"
# The newest TensorFlow serving image the pinned SDK lists (tf2-cpu.2-15); TF
# Serving links the tensorflow-text ops the raw-text signature uses.
DEFAULT_TF_SERVING_VERSION = "2.15"
_MODEL_ID = re.compile(r"^[a-z_][a-z0-9_-]{0,62}$")
MODEL_ID_RULE = ("a Vertex AI model ID is 1-63 of a-z, 0-9, '_' and '-', not starting with a "
                 "digit or '-', e.g. sentiment")


def is_model_id(text: str) -> bool:
  return bool(_MODEL_ID.match(text or ""))


_LABEL = re.compile(r"[^a-z0-9_-]")
LABEL_METRICS = ("eval_accuracy", "macro_f1", "eval_loss")


def sdk(flag: str = "--vertex-model"):
  """The Vertex AI SDK, or an error naming `flag` and the extra to install.

  The one import of it: push's registration, submit and schedule all come here.
  """
  try:
    from google.cloud import aiplatform  # the optional vertex extra
  except ImportError as e:
    raise ValueError(f"{flag} needs the Vertex AI SDK ({VERTEX_PACKAGE}): "
                     "pip install -e '.[vertex]' in your bertline clone") from e
  return aiplatform


@dataclasses.dataclass
class VertexModel:
  """Where a pushed version is registered.

  Attributes:
    model_id: str. The Vertex AI model ID the versions go under ([a-z0-9_-],
      up to 63 characters, not starting with a digit or "-").
    project: str. Google Cloud project.
    region: str. Vertex AI region, e.g. europe-west4.
    display_name: str. The model's display name (default: model_id).
    serving_image: str. Serving container (default: Vertex's prebuilt
      TensorFlow CPU image of the region's multi-region repository).
    endpoint: str. API endpoint override (default: the region's).
  """

  model_id: str
  project: str
  region: str
  display_name: str = ""
  serving_image: str = ""
  endpoint: str = ""

  def __post_init__(self):
    if not is_model_id(self.model_id):
      raise ValueError(f"--vertex-model {self.model_id!r}: {MODEL_ID_RULE}")
    missing = [flag for flag, value in (("--project", self.project), ("--region", self.region))
               if not value]
    if missing:
      raise ValueError(f"--vertex-model needs {' and '.join(missing)}, e.g. --project my-project "
                       "--region europe-west4")

  def image(self) -> str:
    if self.serving_image:
      return self.serving_image
    area = self.region.split("-", 1)[0]
    area = area if area in ("us", "europe", "asia") else "us"
    return (f"{area}-docker.pkg.dev/vertex-ai/prediction/"
            f"tf2-cpu.{DEFAULT_TF_SERVING_VERSION.replace('.', '-')}:latest")


def label_value(value: Any) -> str:
  """A Vertex label value: lowercase letters, digits, '_' and '-', at most 63 characters."""
  if isinstance(value, bool):
    text = "true" if value else "false"
  elif isinstance(value, float):
    text = "nan" if value != value else f"{value:.4f}"
  else:
    text = str(value)
  return _LABEL.sub("_", text.lower().replace(".", "_"))[:63]


def labels(metadata: Dict[str, Any], push_record: Dict[str, Any]) -> Dict[str, str]:
  """The version's labels: bertline's version, task, blessing and headline metrics."""
  metrics = metadata.get("metrics") or {}
  out = {
      "bertline_version": label_value(push_record["version"]),
      "task": label_value((metadata.get("data_metadata") or {}).get("task", "")),
      "blessed": label_value(bool(push_record.get("blessed"))),
      "forced": label_value(bool(push_record.get("forced"))),
      "serving_check": label_value((push_record.get("serving_check") or {}).get("status",
                                                                                "skipped")),
  }
  for name in LABEL_METRICS:
    if isinstance(metrics.get(name), (int, float)):
      out[name] = label_value(float(metrics[name]))
  return out


def description(metadata: Dict[str, Any], push_record: Dict[str, Any]) -> str:
  metrics = metadata.get("metrics") or {}
  numbers = ", ".join(f"{k} {metrics[k]:.6g}" for k in LABEL_METRICS
                      if isinstance(metrics.get(k), (int, float)))
  blessing = "blessed" if push_record.get("blessed") else (
      "NOT blessed (pushed with --force)" if push_record.get("forced") else "not blessed")
  return f"bertline version {push_record['version']}: {blessing}; {numbers or 'no metrics'}"


def register(artifact_uri: str, config: VertexModel, metadata: Dict[str, Any],
             push_record: Dict[str, Any], credentials=None) -> str:
  """Uploads `artifact_uri` (a pushed gs:// version) as a version of config.model_id.

  Returns the registered version's resource name (projects/…/models/ID@N).
  """
  aiplatform = sdk()

  init: Dict[str, Any] = {"project": config.project, "location": config.region}
  if config.endpoint:
    init["api_endpoint"] = config.endpoint
    # The SDK's REST transport takes an http(s):// endpoint as it is; gRPC does not.
    if config.endpoint.startswith(("http://", "https://")):
      init["api_transport"] = "rest"
  if credentials is not None:
    init["credentials"] = credentials
  aiplatform.init(**init)
  alias = f"v{push_record['version']}"
  parent = (f"projects/{config.project}/locations/{config.region}/models/{config.model_id}")
  try:
    existing = aiplatform.Model(model_name=config.model_id, version=alias)
    log.info("%s is already registered as %s", artifact_uri, existing.versioned_resource_name)
    return existing.versioned_resource_name
  except gexc.NotFound:
    pass
  try:
    aiplatform.Model(model_name=config.model_id)
    first = False
  except gexc.NotFound:
    first = True
  common = dict(
      display_name=config.display_name or config.model_id, artifact_uri=artifact_uri,
      serving_container_image_uri=config.image(),
      # Only a blessed version serves by default; a forced one waits to be promoted.
      is_default_version=bool(push_record.get("blessed")) or first,
      version_aliases=[alias], version_description=description(metadata, push_record),
      labels=labels(metadata, push_record), sync=True)
  try:
    model = (aiplatform.Model.upload(model_id=config.model_id, **common) if first else
             aiplatform.Model.upload(parent_model=parent, **common))
  except gexc.AlreadyExists:
    # Another push created the model first: this version goes under it.
    model = aiplatform.Model.upload(parent_model=parent, **common)
  log.info("Registered %s as %s", artifact_uri, model.versioned_resource_name)
  return model.versioned_resource_name


def register_or_explain(artifact_uri: str, config: VertexModel, metadata: Dict[str, Any],
                        push_record: Dict[str, Any], credentials=None,
                        rerun: Optional[str] = None) -> str:
  """register(), with a failure turned into a remote error that says the push is safe."""

  try:
    return register(artifact_uri, config, metadata, push_record, credentials)
  except (gexc.GoogleAPICallError, gexc.RetryError) as e:
    raise errors.RemoteError(
        f"{artifact_uri} was pushed, but registering it in the Vertex AI Model Registry failed "
        f"({type(e).__name__}: {str(e).splitlines()[0][:300]}). The push is complete; re-run "
        f"{rerun or 'the same push'} to register it (the copy is not repeated).") from e
