"""What `bertline score` reads: one example per line, as plain text, TSV or JSON lines.

Every line of every input file becomes a `Row`: an example to score, or a
row to reject with its reason (undecodable bytes, empty text, missing
columns, malformed JSON, a missing field) — parsing never raises on a row.
A row's id is its own (a TSV id column, a JSON id field) or FILE:LINE, lines
counted from 1 as editors do.
"""

from __future__ import annotations

import dataclasses
import json
import unicodedata
from typing import Dict, List, NamedTuple, Optional

from bertline import fileio
from bertline.configs import SettingError, as_flag

FORMATS = ("text", "tsv", "jsonl")


class Row(NamedTuple):
  """One input line: an example (reason == "") or a rejected row (its reason)."""
  id: str
  text_a: str
  text_b: Optional[str]
  reason: str
  file: str
  line: int  # 1-based
  raw: bytes


@dataclasses.dataclass(frozen=True)
class InputSpec:
  """How to read the input's rows.

  Attributes:
    format: "text" (the whole line is text_a), "tsv" or "jsonl".
    text_a: tsv: column index or header name (default "0"); jsonl: field
      name (default "text").
    text_b: the second text (sentence-pair models): column or field.
    id: column or field holding the row's own id (default: FILE:LINE).
    header: tsv: the first line of each file is a header (default: when a
      column is given by name).
  """

  format: str = "text"
  text_a: str = ""
  text_b: str = ""
  id: str = ""
  header: Optional[bool] = None

  def __post_init__(self):
    # Named as `bertline score`'s flags here; a run config's score section names its keys.
    def fail(key: str, template: str) -> SettingError:
      return SettingError(key, template, names=as_flag)
    if self.format not in FORMATS:
      raise fail("format", f"{{key}} {self.format!r}: choose one of {', '.join(FORMATS)}")
    if self.format == "text" and (self.text_a or self.text_b or self.id):
      raise fail("format", "{key} text reads the whole line as text_a: {field:text_a}, "
                 "{field:text_b} and {field:id} need {key} tsv or jsonl")
    if self.format != "tsv" and self.header:
      raise fail("header", "{key} is for {field:format} tsv")
    named = [key for key in self.keys().values() if not key.lstrip("-").isdigit()]
    if self.format == "tsv" and self.header is False and named:
      raise fail("header", f"{{off:header}}: columns {named} are names, which need a header "
                 "line; give column indices (0, 1, ...) or drop it")

  @property
  def text_a_key(self) -> str:
    return self.text_a or {"tsv": "0", "jsonl": "text"}.get(self.format, "")

  def keys(self) -> Dict[str, str]:
    return {name: key for name, key in (("text_a", self.text_a_key), ("text_b", self.text_b),
                                        ("id", self.id)) if key}

  @property
  def has_header(self) -> bool:
    if self.format != "tsv":
      return False
    if self.header is not None:
      return self.header
    return any(not key.lstrip("-").isdigit() for key in self.keys().values())


class TsvColumns(dict):
  """{text_a/text_b/id: column index} of one TSV file, and its header's width (None without a
  header): a row of another width does not match the declared layout."""

  def __init__(self, columns: Dict[str, int], width: Optional[int] = None):
    super().__init__(columns)
    self.width = width


def tsv_columns(spec: InputSpec, path: str) -> TsvColumns:
  """The columns of one TSV file (reads its header line only)."""
  keys = spec.keys()
  if not spec.has_header:
    return TsvColumns({name: int(key) for name, key in keys.items()})
  with fileio.open_read(path) as f:
    header = f.readline().rstrip(b"\n").rstrip(b"\r").decode("utf-8", "replace").split("\t")
  columns = TsvColumns({}, len(header))
  for name, key in keys.items():
    if key.lstrip("-").isdigit():
      columns[name] = int(key)
    elif key in header:
      columns[name] = header.index(key)
    else:
      raise ValueError(f"{path}: its header has no column {key!r} (--{name.replace('_', '-')}); "
                       f"it has {header}. Fix the option or the file.")
  return columns


def _has_text(value: str) -> bool:
  """Whether anything is left once BERT's tokenizer drops NULs, U+FFFD, controls and spaces."""
  return any(not (ch.isspace() or ch in "\x00\ufffd" or unicodedata.category(ch) in ("Cc", "Cf"))
             for ch in value)


def parse(spec: InputSpec, columns: Optional[Dict[str, int]], file: str, line: int,
          raw: bytes, pair: bool) -> Optional[Row]:
  """Line `line` (1-based) of `file` as a Row; None for a TSV header line."""
  if spec.has_header and line == 1:
    return None

  def reject(reason: str) -> Row:
    return Row("", "", None, reason, file, line, raw)

  try:
    text = raw.decode("utf-8")
  except UnicodeDecodeError as e:
    return reject(f"not valid UTF-8 (byte {e.start}: {raw[e.start:e.start + 1]!r})")
  if spec.format == "text":
    values: Dict[str, object] = {"text_a": text}
  elif spec.format == "tsv":
    fields = text.split("\t")
    values = {}
    for name, column in (columns or {}).items():
      if not -len(fields) <= column < len(fields):
        return reject(f"no column {column} ({name}): the row has {len(fields)} tab-separated "
                      "column(s)")
      values[name] = fields[column]
    width = getattr(columns, "width", None)
    if width is not None and len(fields) != width:  # its columns would not mean the header's
      return reject(f"the row has {len(fields)} tab-separated column(s), its file's header "
                    f"{width}")
  else:
    try:
      obj = json.loads(text)
    except json.JSONDecodeError as e:
      return reject(f"malformed JSON: {e.msg} at column {e.colno}")
    except RecursionError:
      return reject("JSON nested too deep to read")
    except ValueError as e:  # Python's own limits, e.g. an integer of more than 4300 digits
      return reject(f"JSON Python cannot read: {str(e).splitlines()[0]}")
    if not isinstance(obj, dict):
      return reject(f"a JSON line must be an object, not {type(obj).__name__}")
    values = {}
    for name, key in spec.keys().items():
      if key not in obj:
        return reject(f"no field {key!r} ({name})")
      values[name] = obj[key]
  for name in ("text_a", "text_b") if pair else ("text_a",):
    if name not in values:
      return reject(f"{name} is missing: a sentence-pair model needs --text-b")
    value = values[name]
    if not isinstance(value, str):
      kind = "null" if value is None else f"a {type(value).__name__}"
      return reject(f"{name} is {kind}, not a string")
    if not _has_text(value):
      return reject(f"{name} is empty")
    try:
      value.encode("utf-8")
    except UnicodeEncodeError as e:
      return reject(f"{name} holds a lone surrogate ({value[e.start]!r}), which is not text")
  row_id = values.get("id")
  if row_id is None:
    row_id = f"{file}:{line}"
  elif isinstance(row_id, bool) or not isinstance(row_id, (str, int)) or str(row_id) == "":
    return reject(f"id {row_id!r} is not a non-empty string or integer")
  return Row(str(row_id), values["text_a"], values.get("text_b") if pair else None, "", file,
             line, raw)


def expand_inputs(patterns: List[str]) -> List[str]:
  """Files named by local paths, globs and gs:// patterns, in a stable order."""
  return fileio.expand_inputs(patterns, "--input", "its rows would be scored twice")
