"""A push target's layout, read: numeric versions, the last complete one, its metadata.

Push writes <target>/<version>/ (TF Serving's layout) and a completion marker
last; every reader — the pipeline's warm start and baseline, `bertline score
--model REGISTRY` — finds the model in production here.
"""

from __future__ import annotations

import json
from typing import Any, Dict, List

from bertline import fileio, schema


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
    if fileio.exists(fileio.join(path, schema.PUSH_COMPLETE_MARKER)):
      return path
  return ""


def pushed_metadata(pushed_model: str) -> Dict[str, Any]:
  """A pushed model's bertline_metadata.json ({} when it has none)."""
  path = fileio.join(pushed_model, "assets", schema.ASSET_METADATA)
  if not fileio.exists(path):
    return {}
  return json.loads(fileio.read_text(path))
