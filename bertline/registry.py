"""A push target's layout, read: numeric versions, the last complete one, its metadata.

Push writes <target>/<version>/ (TF Serving's layout) and a completion marker
last; every reader — the pipeline's warm start and baseline, `bertline score
--model REGISTRY` — finds the model in production here.
"""

from __future__ import annotations

from typing import Any, Dict, List

from bertline import fileio, schema
from bertline.export_dir import ExportDir


def versions(base: str) -> List[int]:
  """The numeric version directories under `base` (TF Serving's layout), ascending."""
  if not fileio.exists(base):
    return []
  return sorted(int(n) for n in fileio.listdir(base) if schema.is_version(n))


def latest_pushed(target: str) -> str:
  """The newest complete model version under a push target, or "" when there is none.

  A version counts once its completion marker exists: push writes it last.
  """
  if not target or not fileio.exists(target):
    return ""
  for version in reversed(versions(target)):
    path = fileio.join(target, str(version))
    if ExportDir(path).is_pushed():
      return path
  return ""


def resolve_version(path: str, name: str = "") -> str:
  """An exported version directory as it is, or the last version pushed under a push target.

  `name` is how the caller's user gave it (`--model registry/`), for the error.
  """
  path = path.rstrip("/")
  if ExportDir(path).is_export():
    return path
  pushed = latest_pushed(path)
  if not pushed:
    raise FileNotFoundError(
        f"{name or path}: neither an exported version (no {schema.SAVED_MODEL_PB} or "
        f"{schema.TFLITE_FILE}) nor a push target holding a complete pushed version. Give "
        "`bertline export`'s <export-dir>/<version> or `bertline push --to`'s directory.")
  return pushed


def pushed_metadata(pushed_model: str) -> Dict[str, Any]:
  """A pushed model's bertline_metadata.json ({} when it has none)."""
  return ExportDir(pushed_model).metadata()
