"""Pushing to a local registry: one atomic publish per version, faults end in one line."""

import json
import os
import subprocess
import sys

import tensorflow as tf

from bertline import errors, schema
from bertline.evaluator import scoring
from tests.reliability.conftest import bertline, last_line


def _hidden(registry):
  return sorted(n for n in os.listdir(registry) if n.startswith(".") and not n.endswith(".lock"))


def test_two_concurrent_pushes_of_one_version_publish_exactly_one_whole_model(exported, tmp_path):
  registry = str(tmp_path / "registry")
  for round_ in range(3):
    target = os.path.join(registry, str(round_))
    env = dict(os.environ, NO_GCE_CHECK="True")
    # The claim is what is tested here; the serving check is in test_serving_faults.py.
    procs = [subprocess.Popen([sys.executable, "-m", "bertline", "push", "--skip-serving-check",
                               "--model",
                               exported["path"], "--to", target, "--force"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for _ in range(2)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes == [0, errors.BAD_INPUT], results
    (loser,) = [err for code, err in results if code]
    assert ("in progress" in loser or "was already pushed" in loser) and "Traceback" not in loser
    version = os.path.join(target, "3")
    record = json.loads(open(os.path.join(version, schema.PUSH_COMPLETE_MARKER)).read())
    for rel, info in record["files"].items():  # every file of the record, whole
      assert os.path.getsize(os.path.join(version, rel)) == info["size"]
    model = tf.saved_model.load(version)
    assert schema.SIGNATURE_TEXT in model.signatures
    assert _hidden(target) == []  # no staging directory left


def test_an_orphaned_staging_directory_is_replaced_by_the_next_push(exported, tmp_path):
  registry = tmp_path / "registry"
  orphan = registry / ".3.partial-deadbeef"
  orphan.mkdir(parents=True)
  (orphan / "saved_model.pb").write_bytes(b"half")
  result = bertline("push", "--model", exported["path"], "--to", str(registry), "--force")
  assert result.returncode == 0, result.stderr
  assert _hidden(str(registry)) == [] and os.path.exists(registry / "3" / "saved_model.pb")


def test_a_full_disk_is_one_line_exit_5_and_leaves_no_staging_behind(exported, small_fs):
  result = bertline("push", "--skip-serving-check", "--model", exported["path"], "--to",
                    str(small_fs / "r"), "--force")
  assert result.returncode == errors.STORAGE, result.stderr
  assert "no space left on the device" in last_line(result) and "Traceback" not in result.stderr
  assert _hidden(str(small_fs / "r")) == [] and not os.path.exists(small_fs / "r" / "3")


def test_a_read_only_target_is_one_line_exit_5(exported, read_only_fs):
  result = bertline("push", "--skip-serving-check", "--model", exported["path"], "--to",
                    str(read_only_fs / "r"), "--force")
  assert result.returncode == errors.STORAGE, result.stderr
  assert "read-only" in last_line(result) and "Traceback" not in result.stderr


def test_a_target_that_is_a_file_or_under_a_file_is_named(exported, tmp_path):
  afile = tmp_path / "afile"
  afile.write_text("x")
  for to in (afile, afile / "registry"):
    result = bertline("push", "--skip-serving-check", "--model", exported["path"], "--to",
                      str(to), "--force")
    assert result.returncode == errors.BAD_INPUT, result.stderr
    assert "is a file" in last_line(result) and str(afile) in last_line(result)
    assert "Traceback" not in result.stderr


def test_symlinks_in_an_export_are_refused_naming_them(exported, tmp_path):
  import shutil
  secret = tmp_path / "secret.txt"
  secret.write_text("not part of any model")
  for case in ("variables", "file"):
    model = tmp_path / case / "3"
    shutil.copytree(exported["path"], model)
    if case == "variables":  # a linked directory: os.walk skipped it, the model did not load
      shutil.move(str(model / "variables"), str(tmp_path / case / "vars"))
      os.symlink(tmp_path / case / "vars", model / "variables")
      link = model / "variables"
    else:  # a linked file pointing outside: its contents were uploaded
      link = model / "assets" / "notes.txt"
      os.symlink(secret, link)
    registry = tmp_path / case / "registry"
    result = bertline("push", "--model", str(model), "--to", str(registry), "--force")
    assert result.returncode == errors.BAD_INPUT, result.stderr
    assert f"{link} is a symbolic link" in last_line(result) and "Traceback" not in result.stderr
    assert not os.path.exists(registry / "3")


def test_two_concurrent_exports_of_one_version_publish_exactly_one_whole_model(tiny_model,
                                                                               tmp_path):
  export_dir = tmp_path / "export"
  procs = [subprocess.Popen([sys.executable, "-m", "bertline", "export", "--model-dir",
                             tiny_model["model_dir"], "--export-dir", str(export_dir),
                             "--version", "7"], env=dict(os.environ, NO_GCE_CHECK="True"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
           for _ in range(2)]
  results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]
  assert sorted(code for code, _ in results) == [0, errors.BAD_INPUT], results
  (refused,) = [err.strip().splitlines()[-1] for code, err in results if code]
  assert ("was published by another `bertline export` while this one ran" in refused
          or "version 7 was already exported and is never replaced" in refused), refused
  assert "Traceback" not in "".join(err for _, err in results)
  assert os.listdir(export_dir) == ["7"]  # one version, no temporary left behind
  assert scoring.is_export(str(export_dir / "7"))
