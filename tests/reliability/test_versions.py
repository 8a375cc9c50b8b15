"""Versions are ASCII digits: TF Serving's layout, read the same by every tool."""

import os

from bertline import errors, schema
from bertline.registry import latest_pushed
from tests.reliability.conftest import bertline, last_line


def test_only_ascii_digit_names_are_versions():
  assert schema.is_version("0") and schema.is_version("1700000000")
  for name in ("٣", "²", "3a", "", "-1", " 3", "３"):  # Arabic-Indic 3, superscript 2, fullwidth 3
    assert not schema.is_version(name), name


def test_non_ascii_versions_are_refused_by_export_push_and_ignored_by_lookups(exported, tmp_path):
  result = bertline("export", "--model-dir", "unused", "--export-dir", str(tmp_path / "e"),
                    "--version", "٣")
  assert result.returncode == errors.USAGE
  assert "'٣' is not a version: use ASCII digits" in result.stderr
  odd = tmp_path / "²"
  os.symlink(exported["path"], odd)
  result = bertline("push", "--model", str(odd), "--to", str(tmp_path / "r"), "--force")
  assert result.returncode == errors.BAD_INPUT and "'²' is not a numeric version" in last_line(result)
  registry = tmp_path / "registry"
  for name in ("٣", "²", "7"):
    (registry / name).mkdir(parents=True)
    (registry / name / schema.PUSH_COMPLETE_MARKER).write_text("{}")
  assert latest_pushed(str(registry)) == str(registry / "7")
