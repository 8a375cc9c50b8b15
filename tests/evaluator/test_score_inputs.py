"""How `bertline score` reads a row: every line an example or a rejected row with its reason."""

import pytest

from bertline.evaluator.score_inputs import InputSpec, expand_inputs, parse, tsv_columns


def test_text_lines():
  spec = InputSpec()
  row = parse(spec, None, "f.txt", 7, "Ça va?".encode(), pair=False)
  assert (row.id, row.text_a, row.text_b, row.reason) == ("f.txt:7", "Ça va?", None, "")
  assert parse(spec, None, "f.txt", 8, b" \t ", pair=False).reason == "text_a is empty"
  assert parse(spec, None, "f.txt", 9, b"\xc3(", pair=False).reason.startswith(
      "not valid UTF-8 (byte 0")


def test_tsv_by_index_and_by_header_name(tmp_path):
  path = tmp_path / "a.tsv"
  path.write_text("id\tlang\ttext\tother\nx1\ten\thello\tworld\n")
  named = InputSpec("tsv", "text", "other", "id")
  assert named.has_header and tsv_columns(named, str(path)) == {"text_a": 2, "text_b": 3, "id": 0}
  assert parse(named, {"text_a": 2, "text_b": 3, "id": 0}, str(path), 1, b"id\tlang", True) is None
  row = parse(named, {"text_a": 2, "text_b": 3, "id": 0}, str(path), 2, b"x1\ten\thello\tworld",
              pair=True)
  assert (row.id, row.text_a, row.text_b) == ("x1", "hello", "world")
  short = parse(named, {"text_a": 2, "text_b": 3, "id": 0}, str(path), 3, b"x2\ten", pair=True)
  assert short.reason == "no column 2 (text_a): the row has 2 tab-separated column(s)"
  by_index = InputSpec("tsv", "-1")
  assert not by_index.has_header and tsv_columns(by_index, str(path)) == {"text_a": -1}
  with pytest.raises(ValueError, match=r"a.tsv: its header has no column 'body' \(--text-a\)"):
    tsv_columns(InputSpec("tsv", "body"), str(path))
  with pytest.raises(ValueError, match=r"--no-header: columns \['text'\] are names"):
    InputSpec("tsv", "text", header=False)


def test_json_lines():
  spec = InputSpec("jsonl", id="key")
  assert parse(spec, None, "f", 1, b'{"key": 5, "text": "ok"}', False).id == "5"
  reasons = [parse(spec, None, "f", 1, raw, False).reason for raw in (
      b'{"key": 5, "text": ', b'{"key": 5}', b'{"key": 5, "text": ["a"]}', b'"text"',
      b'{"key": true, "text": "ok"}', b'{"key": 5, "text": "ok"}')]
  assert reasons == ["malformed JSON: Expecting value at column 20", "no field 'text' (text_a)",
                     "text_a is a list, not a string", "a JSON line must be an object, not str",
                     "id True is not a non-empty string or integer", ""]


def test_inputs_globs_and_mistakes(tmp_path):
  for name in ("b.txt", "a.txt"):
    (tmp_path / name).write_text("x\n")
  assert expand_inputs([str(tmp_path / "*.txt")]) == [str(tmp_path / "a.txt"),
                                                     str(tmp_path / "b.txt")]
  with pytest.raises(ValueError, match="is a directory: give files or a glob"):
    expand_inputs([str(tmp_path)])
  with pytest.raises(ValueError, match=r"names .*a.txt twice; its rows would be scored twice"):
    expand_inputs([str(tmp_path / "a.txt"), str(tmp_path / "*.txt")])
  with pytest.raises(ValueError, match="--format text reads the whole line"):
    InputSpec("text", id="k")


def test_a_tsv_row_that_does_not_match_its_header_is_rejected_with_both_widths(tmp_path):
  path = tmp_path / "a.tsv"
  path.write_text("id\ttext\nx1\thello\n")
  spec = InputSpec("tsv", "text", id="id")
  columns = tsv_columns(spec, str(path))
  assert columns == {"text_a": 1, "id": 0} and columns.width == 2
  assert parse(spec, columns, str(path), 2, b"x1\thello", False).text_a == "hello"
  assert parse(spec, columns, str(path), 3, b"x2\thello\tworld", False).reason == (
      "the row has 3 tab-separated column(s), its file's header 2")
  assert parse(spec, columns, str(path), 4, b"x3", False).reason == (
      "no column 1 (text_a): the row has 1 tab-separated column(s)")
