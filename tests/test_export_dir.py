"""bertline/export_dir.py and registry.resolve_version: one owner of an exported version's layout."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from bertline import registry, schema
from bertline.export_dir import ExportDir


def test_the_layout_export_writes_is_the_one_readers_read(exported, tiny_model):
  version = ExportDir(exported["path"] + "/")
  assert version.path == exported["path"] and version.version == "3"
  assert version.is_saved_model() and version.is_export() and not version.is_tflite()
  assert not version.is_pushed()
  with open(os.path.join(tiny_model["model_dir"], schema.LABELS_FILE)) as f:
    assert version.labels() == f.read().split()
  with open(os.path.join(exported["path"], "assets", "bertline_metadata.json")) as f:
    assert version.metadata() == json.load(f)
  assert os.path.getsize(version.warmup_file) > 0
  assert version.metadata()["labels"] == version.labels()


def test_a_registry_resolves_to_its_last_complete_version(exported, tmp_path):
  registry_dir = tmp_path / "registry"
  for number, complete in ((4, True), (5, True), (6, False)):
    dest = registry_dir / str(number)
    shutil.copytree(exported["path"], dest)
    if complete:
      (dest / schema.PUSH_COMPLETE_MARKER).write_text("{}")
  assert registry.resolve_version(str(registry_dir)) == str(registry_dir / "5")
  assert ExportDir(str(registry_dir / "5")).is_pushed()
  # An exported version is itself, pushed or not.
  assert registry.resolve_version(str(registry_dir / "6")) == str(registry_dir / "6")
  with pytest.raises(FileNotFoundError, match=r"^--model nowhere: neither an exported version "
                     r"\(no saved_model\.pb or model\.tflite\) nor a push target"):
    registry.resolve_version(str(tmp_path / "nowhere"), "--model nowhere")
  assert ExportDir(str(tmp_path)).metadata() == {}
