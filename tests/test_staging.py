"""bertline/staging.py: a Dataflow worker gets bertline's own wheel, staged unless the job
brings an image.

The slow case proves what can be proven without Google's service: the staged
wheel, installed into a clean virtual environment that holds only what Beam's
SDK worker image holds (apache-beam[gcp]), runs the preprocess on real rows
with output identical to this environment's.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import tomllib
import venv
import zipfile

import pytest
from apache_beam.options.pipeline_options import SetupOptions

from bertline import beam_runner, corpora, resources, staging
from bertline.preprocessing import beam_job
from tests.records import read_split

ROOT = os.path.join(os.path.dirname(__file__), "..")
VOCAB = os.path.join(resources.minilm_dir(), "vocab.txt")
DATAFLOW = ["--runner", "DataflowRunner", "--project", "p", "--region", "europe-west4",
            "--temp_location", "gs://bucket/tmp"]


def _expected_modules():
  """Every module of every package pyproject.toml declares, where Python imports it from."""
  with open(os.path.join(ROOT, "pyproject.toml"), "rb") as f:
    packages = tomllib.load(f)["tool"]["setuptools"]["packages"]
  names = set()
  for package in packages:
    (directory,) = importlib.util.find_spec(package).submodule_search_locations
    names |= {f"{package.replace('.', '/')}/{n}" for n in os.listdir(directory) if n.endswith(".py")}
  return names


def test_the_staged_wheel_holds_every_module_and_the_runtime_requirements(tmp_path):
  wheel = staging.worker_package(str(tmp_path))
  assert os.path.basename(wheel) == "bertline-0.1.0-py3-none-any.whl"
  with zipfile.ZipFile(wheel) as z:
    names = set(z.namelist())
    metadata = z.read("bertline-0.1.0.dist-info/METADATA").decode()
    record = z.read("bertline-0.1.0.dist-info/RECORD").decode()
    assert z.read("bertline/preprocessing/beam_job.py") == open(
        os.path.join(ROOT, "preprocessing", "beam_job.py"), "rb").read()
  assert {n for n in names if n.endswith(".py")} == _expected_modules()
  assert "Requires-Dist: tensorflow-text<2.22,>=2.21" in metadata
  assert "Requires-Dist: apache-beam<2.78,>=2.77" in metadata
  assert all(line.split(",")[0] in names for line in record.splitlines())


def test_remote_runners_get_the_wheel_unless_the_job_brings_its_worker_environment():
  options = beam_runner.pipeline_options(DATAFLOW)
  with beam_runner.session(options) as runner:
    assert runner is None  # Beam's own DataflowRunner
    (staged,) = options.view_as(SetupOptions).extra_packages
    assert staged.endswith("bertline-0.1.0-py3-none-any.whl") and os.path.exists(staged)
  assert not os.path.exists(staged)  # built for the submission only
  for own in (["--sdk_container_image", "europe-docker.pkg.dev/p/r/bertline-worker:0.1.0"],
              ["--extra_package", "dist/bertline-0.1.0-py3-none-any.whl"],
              ["--requirements_file", "requirements.txt"]):
    options = beam_runner.pipeline_options(DATAFLOW + own)
    with beam_runner.session(options):
      assert options.view_as(SetupOptions).extra_packages in (None, own[1:])


def _run(cmd, **kw):
  result = subprocess.run(cmd, capture_output=True, text=True, **kw)
  assert result.returncode == 0, (cmd, result.stdout[-2000:], result.stderr[-4000:])
  return result


@pytest.mark.slow
def test_the_wheel_runs_the_preprocess_in_a_clean_worker_environment(tmp_path):
  data = str(tmp_path / "data")
  corpora.write_tweets_tsv(data, limit=2000)
  local = str(tmp_path / "local")
  args = ["preprocess", "--task-config", os.path.join(data, corpora.TWEETS_TASK_FILE),
          "--data-dir", data, "--vocab-file", VOCAB, "--max-seq-length", "48",
          "--chunk-bytes", "30000"]
  metadata = beam_job.run(beam_job.config_from_args(args[1:] + ["--output-dir", local]))

  # What Beam's SDK worker image holds, and nothing of this environment.
  env_dir = str(tmp_path / "worker-venv")
  venv.create(env_dir, with_pip=True, clear=True)
  python = os.path.join(env_dir, "bin", "python")
  pip = [python, "-m", "pip", "install", "-q", "--disable-pip-version-check"]
  _run(pip + ["apache-beam[gcp]==2.77.0"], timeout=1200)
  wheel = staging.worker_package(str(tmp_path))
  _run(pip + [wheel], timeout=1200)  # what a worker does with --extra_package
  clean = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
  found = _run([python, "-c", "import bertline.preprocessing.beam_job as m; print(m.__file__)"],
               cwd=str(tmp_path), env=clean).stdout.strip()
  assert found.startswith(env_dir), found  # the installed wheel, not this checkout

  remote = str(tmp_path / "worker")
  _run([python, "-m", "bertline", *args, "--output-dir", remote], cwd=str(tmp_path), env=clean,
       timeout=600)
  for split in metadata.splits:
    ours, theirs = read_split(local, split), read_split(remote, split)
    assert len(ours) == metadata.splits[split].num_examples
    assert {g: r for g, (r, _) in ours.items()} == {g: r for g, (r, _) in theirs.items()}, split

  # A regular (non-editable) install restages the same modules.
  restaged = _run([python, "-c", "import sys; from bertline import staging; "
                   "print(staging.worker_package(sys.argv[1]))", str(tmp_path / "again")],
                  cwd=str(tmp_path), env=clean)
  with zipfile.ZipFile(wheel) as a, zipfile.ZipFile(restaged.stdout.strip()) as b:
    assert sorted(n for n in a.namelist() if n.endswith(".py")) == \
           sorted(n for n in b.namelist() if n.endswith(".py"))
