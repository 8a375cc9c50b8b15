"""bertline's own package, rebuilt as a wheel for remote Beam workers.

Dataflow's workers start from Beam's SDK image, which lacks bertline and
tensorflow-text. `--extra_package WHEEL` makes each worker `pip install` the
wheel with its declared dependencies, so bertline builds that wheel from what
is installed here — offline, with no build backend: the modules are copied as
they are and the installed metadata (name, version, Requires-Dist) goes with
them. A source tree (a clone with `pip install -e .`) is read through
pyproject.toml's package map; a regular install through its RECORD.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import os
import tomllib
import zipfile
from typing import Dict

import bertline

DIST = "bertline"
_WHEEL = "Wheel-Version: 1.0\nGenerator: bertline.staging\nRoot-Is-Purelib: true\nTag: py3-none-any\n"


def worker_package(dest_dir: str) -> str:
  """Writes bertline-<version>-py3-none-any.whl into `dest_dir`; returns its path."""
  site = os.path.dirname(os.path.dirname(os.path.abspath(bertline.__file__)))
  if os.path.exists(os.path.join(site, "pyproject.toml")):  # a source tree (editable install)
    dist = importlib.metadata.distribution(DIST)
    modules = _source_modules(site)
  else:  # site-packages: the distribution installed beside the package
    dist = next(iter(importlib.metadata.distributions(name=DIST, path=[site])), None)
    modules = _installed_modules(dist) if dist else {}
  if dist is None or not any(name.endswith("preprocessing/beam_job.py") for name in modules):
    raise RuntimeError(f"could not find bertline's installed modules under {site} to stage; pass "
                       "--sdk_container_image with the worker image instead (README: Dataflow)")
  version = dist.version
  info = f"{DIST}-{version}.dist-info"
  os.makedirs(dest_dir, exist_ok=True)
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
    # METADATA of a wheel install, PKG-INFO of an editable one's egg-info: the same fields.
    metadata = dist.read_text("METADATA") or dist.read_text("PKG-INFO")
    add(f"{info}/METADATA", metadata.encode("utf-8"))
    entry_points = dist.read_text("entry_points.txt")
    if entry_points:
      add(f"{info}/entry_points.txt", entry_points.encode("utf-8"))
    add(f"{info}/WHEEL", _WHEEL.encode("utf-8"))
    wheel.writestr(f"{info}/RECORD", "\n".join(record + [f"{info}/RECORD,,"]) + "\n")
  return path


def _source_modules(root: str) -> Dict[str, str]:
  """{name in the wheel: file} of every package pyproject.toml maps (package-dir)."""
  with open(os.path.join(root, "pyproject.toml"), "rb") as f:
    setuptools = tomllib.load(f)["tool"]["setuptools"]
  package_dir = setuptools.get("package-dir", {})
  modules = {}
  for package in setuptools["packages"]:
    # As setuptools maps it: by the package's own entry, else by its nearest mapped parent's.
    parent = max((p for p in package_dir if package == p or package.startswith(p + ".")),
                 key=len, default="")
    rest = package[len(parent):].lstrip(".").replace(".", "/")
    directory = os.path.join(root, package_dir.get(parent, ""), rest)
    for name in sorted(os.listdir(directory)):
      if name.endswith(".py"):
        modules[f"{package.replace('.', '/')}/{name}"] = os.path.join(directory, name)
  return modules


def _installed_modules(dist) -> Dict[str, str]:
  """{name in the wheel: file} of the installed distribution's modules, from its RECORD."""
  return {str(f): str(dist.locate_file(f)) for f in dist.files or []
          if str(f).startswith(f"{DIST}/") and str(f).endswith(".py")}
