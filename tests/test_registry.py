"""bertline/registry.py: a push target's numeric versions, the newest complete one, and what
a reader is told when a path is neither an export nor a registry."""

import shutil

import pytest

from bertline import registry, schema


def _version(base, number, exported, complete):
  path = base / str(number)
  shutil.copytree(exported["path"], path)
  if complete:
    (path / schema.PUSH_COMPLETE_MARKER).write_text("{}")
  return str(path)


def test_versions_are_numeric_and_only_complete_pushes_count(exported, tmp_path):
  base = tmp_path / "registry"
  assert registry.versions(str(base)) == [] and registry.latest_pushed(str(base)) == ""
  _version(base, 9, exported, complete=True)
  newest = _version(base, 10, exported, complete=True)
  _version(base, 11, exported, complete=False)  # still being written, or abandoned
  (base / "notes").mkdir()  # not a version
  (base / "12.tmp").mkdir()
  assert registry.versions(str(base)) == [9, 10, 11]
  assert registry.latest_pushed(str(base)) == newest
  assert registry.resolve_version(str(base) + "/") == newest
  assert registry.resolve_version(exported["path"]) == exported["path"]  # an export as it is
  assert registry.pushed_metadata(newest)["labels"] == ["negative", "neutral", "positive"]


def test_a_path_that_is_neither_names_what_to_give(tmp_path):
  with pytest.raises(FileNotFoundError, match=r"^--model registry/: neither an exported version "
                     r"\(no saved_model.pb or model.tflite\) nor a push target .* Give "
                     r"`bertline export`'s <export-dir>/<version>"):
    registry.resolve_version(str(tmp_path), name="--model registry/")
  assert registry.pushed_metadata(str(tmp_path)) == {}
