"""bertline's own package, rebuilt as a wheel for remote Beam workers.

Dataflow's workers start from Beam's SDK image, which lacks bertline and
tensorflow-text. `--extra_package WHEEL` makes each worker `pip install` the
wheel with its declared dependencies, so bertline builds that wheel from what
is installed here — offline, with no build backend: the modules are copied as
they are and the installed METADATA (name, version, Requires-Dist) goes with
them. An editable install (a clone with `pip install -e .`) is read through
pyproject.toml's package map; a regular install through its RECORD.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import json
import os
import zipfile
from typing import Dict, Optional

DIST = "bertline"
_WHEEL = "Wheel-Version: 1.0\nGenerator: bertline.staging\nRoot-Is-Purelib: true\nTag: py3-none-any\n"


def worker_package(dest_dir: str) -> str:
  """Writes bertline-<version>-py3-none-any.whl into `dest_dir`; returns its path."""
  dist = importlib.metadata.distribution(DIST)
  source = _editable_source(dist)
  modules = _source_modules(source) if source else _installed_modules(dist)
  if not any(name.endswith("preprocessing/beam_job.py") for name in modules):
    raise RuntimeError(f"could not find bertline's modules to stage (found {len(modules)} files); "
                       "pass --sdk_container_image with the worker image instead (README: Dataflow)")
  version = dist.version
  info = f"{DIST}-{version}.dist-info"
  path = os.path.join(dest_dir, f"{DIST}-{version}-py3-none-any.whl")
  record = []
  with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as wheel:
    def add(name: str, data: bytes) -> None:
      wheel.writestr(name, data)
      digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
      record.append(f"{name},sha256={digest},{len(data)}")

    for name, file in sorted(modules.items()):
      with open(file, "rb") as f:
        add(name, f.read())
    add(f"{info}/METADATA", dist.read_text("METADATA").encode("utf-8"))
    entry_points = dist.read_text("entry_points.txt")
    if entry_points:
      add(f"{info}/entry_points.txt", entry_points.encode("utf-8"))
    add(f"{info}/WHEEL", _WHEEL.encode("utf-8"))
    wheel.writestr(f"{info}/RECORD", "\n".join(record + [f"{info}/RECORD,,"]) + "\n")
  return path


def _editable_source(dist) -> Optional[str]:
  """The source tree of an editable install (PEP 610's direct_url.json), else None."""
  text = dist.read_text("direct_url.json")
  if not text:
    return None
  direct = json.loads(text)
  if not direct.get("dir_info", {}).get("editable") or not direct["url"].startswith("file://"):
    return None
  return direct["url"][len("file://"):]


def _source_modules(root: str) -> Dict[str, str]:
  """{name in the wheel: file} of every package pyproject.toml maps (package-dir)."""
  import tomllib
  with open(os.path.join(root, "pyproject.toml"), "rb") as f:
    setuptools = tomllib.load(f)["tool"]["setuptools"]
  package_dir = setuptools.get("package-dir", {})
  modules = {}
  for package in setuptools["packages"]:
    directory = os.path.join(root, package_dir.get(package, package.replace(".", "/")))
    for name in sorted(os.listdir(directory)):
      if name.endswith(".py"):
        modules[f"{package.replace('.', '/')}/{name}"] = os.path.join(directory, name)
  return modules


def _installed_modules(dist) -> Dict[str, str]:
  """{name in the wheel: file} of the installed distribution's modules, from its RECORD."""
  return {str(f): str(dist.locate_file(f)) for f in dist.files or []
          if str(f).startswith(f"{DIST}/") and str(f).endswith(".py")}
