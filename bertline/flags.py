"""Command lines generated from a stage's config, and strict about what they accept.

A stage declares its settings once, as `configs.setting()` fields of its
config dataclass; `add_config_flags` turns each into a flag (`max_seq_length`
-> `--max-seq-length`, its type, default, choices and help), and
`config_from_flags` turns the parsed flags back into the config, whose own
checks then run with the flag's name in the message. So the same setting has
the same flag, default and check in the CLI, the run config and the kfp
component.

`ArgumentParser` refuses every unknown flag with the closest valid name, on
one line, exit 2 — and no abbreviations: `--max-seq` is not silently
`--max-seq-length`, nor a Beam option. Stdlib only: `bertline COMMAND --help`
must not load TensorFlow.
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import sys
import textwrap
import typing
from typing import Any, Iterable, List, Optional, Sequence, Type, TypeVar

from bertline import configs

T = TypeVar("T")

USAGE = 2  # the exit code of a bad command line (errors.USAGE)


def closest(name: str, valid: Iterable[str]) -> Optional[str]:
  """The valid name `name` most probably meant, or None when none is close."""
  matches = difflib.get_close_matches(name, list(valid), n=1, cutoff=0.7)
  return matches[0] if matches else None


def unknown_flag_message(flag: str, valid: Iterable[str]) -> str:
  name = flag.split("=", 1)[0]
  if not name.startswith("-"):
    return f"unexpected argument {flag!r}"
  guess = closest(name, valid)
  return f"unknown flag {name}" + (f"; did you mean {guess}?" if guess else "")


class ParagraphFormatter(argparse.HelpFormatter):
  """Wraps a description's paragraphs one by one, keeps indented lines (examples) as written,
  and ends every flag's help with what a reader needs: `[required]`, or its default."""

  def _get_help_string(self, action: argparse.Action) -> str:
    text = action.help or ""
    if action.required and "[required" not in text:
      return text + " [required]"
    default = action.default
    if ("default" in text or "[required" in text or default in (None, False, "", [], ())
        or default is argparse.SUPPRESS or isinstance(action, argparse._HelpAction)):
      return text
    if default is True:
      return text + " (default: on)"
    return text + f" (default: {default})"

  def _fill_text(self, text: str, width: int, indent: str) -> str:
    out = []
    for paragraph in text.split("\n\n"):
      if paragraph.startswith("  ") or "\n  " in paragraph:
        out.append("\n".join(indent + line for line in paragraph.splitlines()))
      else:
        out.append(textwrap.fill(" ".join(paragraph.split()), width, initial_indent=indent,
                                 subsequent_indent=indent))
    return "\n\n".join(out)


class ArgumentParser(argparse.ArgumentParser):
  """argparse, with unknown flags refused by name and errors on one line."""

  def __init__(self, *args: Any, **kwargs: Any):
    kwargs.setdefault("allow_abbrev", False)  # `--max-seq` must not quietly mean something
    kwargs.setdefault("formatter_class", ParagraphFormatter)
    super().__init__(*args, **kwargs)

  def flag_names(self) -> List[str]:
    return [s for action in self._actions for s in action.option_strings if s.startswith("--")]

  def parse_args(self, args: Optional[Sequence[str]] = None, namespace: Any = None) -> Any:
    argv = list(sys.argv[1:] if args is None else args)
    # Before argparse: it would report a misspelled required flag as missing, not as misspelled.
    valid = {s for action in self._actions for s in action.option_strings}
    for arg in argv:
      if arg == "--":
        break
      if arg.startswith("--") and arg.split("=", 1)[0] not in valid:
        self.error(unknown_flag_message(arg, self.flag_names()))
    parsed, extra = self.parse_known_args(argv, namespace)
    if extra:
      self.error(unknown_flag_message(extra[0], self.flag_names()))
    return parsed

  def error(self, message: str) -> typing.NoReturn:
    sys.stderr.write(f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")
    sys.exit(USAGE)


def flag_name(field: dataclasses.Field) -> str:
  return field.metadata.get("flag") or configs.as_flag(field.name)


def flag_namer(cls: Type[Any]):
  """field name -> its flag, for SettingError.named(): a library call's bad value is named as
  the command line names it."""
  names = {f.name: flag_name(f) for f in dataclasses.fields(cls)}
  return lambda field: names.get(field, configs.as_flag(field))


def flag_names(cls: Type[Any]) -> List[str]:
  """Every flag config class `cls` generates."""
  return [flag_name(f) for f in _declared(cls)]


def _declared(cls: Type[Any]) -> List[dataclasses.Field]:
  """The fields of `cls` declared with configs.setting() that have a flag."""
  return [f for f in dataclasses.fields(cls) if "help" in f.metadata and f.metadata["cli"]]


def _unwrap_optional(tp: Any) -> Any:
  if typing.get_origin(tp) is typing.Union:
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if len(args) == 1:
      return args[0]
  return tp


def _comma_list(inner: Any):
  def parse(text: str) -> List[Any]:
    try:
      return [inner(part.strip()) for part in text.split(",") if part.strip()]
    except ValueError:
      raise argparse.ArgumentTypeError(
          f"expected comma-separated {inner.__name__} values, got {text!r}") from None
  parse.__name__ = f"list of {inner.__name__}"
  return parse


class _KeyValueAction(argparse.Action):
  """`--threshold eval_accuracy=0.9`, repeatable: a dict setting, one KEY=VALUE at a time."""

  def __init__(self, *args: Any, value_type: Any = str, **kwargs: Any):
    self.value_type = value_type
    super().__init__(*args, **kwargs)

  def __call__(self, parser, namespace, text, option_string=None):
    key, sep, raw = str(text).partition("=")
    if not sep or not key.strip():
      parser.error(f"{option_string} {text!r}: expected KEY=VALUE, e.g. {option_string} "
                   f"{self.metavar.split('=')[0].lower()}=0.9")
    try:
      value = self.value_type(raw.strip())
    except ValueError:
      kind = {float: "number", int: "whole number"}.get(self.value_type, self.value_type.__name__)
      parser.error(f"{option_string} {text!r}: {raw.strip()!r} is not a {kind}")
    current = dict(getattr(namespace, self.dest, None) or {})
    current[key.strip()] = value
    setattr(namespace, self.dest, current)


def _default_text(field: dataclasses.Field) -> str:
  if field.default is not dataclasses.MISSING:
    value = field.default
  elif field.default_factory is not dataclasses.MISSING:
    value = field.default_factory()
  else:
    return ""
  if value in (None, "", [], {}) or field.metadata.get("required"):
    return ""
  if isinstance(value, bool):
    return f" (default: {'on' if value else 'off'})"
  if isinstance(value, list):
    value = ",".join(map(str, value))
  return f" (default: {value})"


def add_config_flags(parser: argparse.ArgumentParser, cls: Type[Any],
                     skip: Sequence[str] = (), title: Optional[str] = None,
                     only: Optional[Sequence[str]] = None, required: Sequence[str] = ()) -> None:
  """Adds a flag for every setting of config class `cls` (or those in `only`) but those in `skip`.

  `required` names settings this command needs though the config may leave
  them empty (distill's --teacher): their help says so; the command checks.

  The flags default to "not given" (argparse.SUPPRESS), so config_from_flags
  can lay what was given over a config read from a file.
  """
  hints = typing.get_type_hints(cls)
  target = parser.add_argument_group(title) if title else parser
  for field in _declared(cls):
    if field.name in skip or (only is not None and field.name not in only):
      continue
    meta, tp = field.metadata, _unwrap_optional(hints[field.name])
    needed = meta["required"] or field.name in required
    kwargs: dict = {"dest": field.name, "default": argparse.SUPPRESS,
                    "help": meta["help"] + ("" if needed else _default_text(field))
                    + (" [required]" if needed else "")}
    metavar = meta["metavar"] or {int: "N", float: "X"}.get(tp)
    if metavar and typing.get_origin(tp) not in (dict, typing.Dict):
      kwargs["metavar"] = metavar
    names = [flag_name(field), *meta["aliases"]]
    if meta["aliases"]:
      kwargs["help"] += f" (also {', '.join(meta['aliases'])})"
    if meta["repeat"]:
      kwargs.update(action="append", type=str)
    elif tp is bool:
      kwargs["action"] = argparse.BooleanOptionalAction
      if meta["off_flag"]:
        kwargs["help"] += f"; {meta['off_flag']} is --no-{field.name.replace('_', '-')}"
    elif typing.get_origin(tp) in (dict, typing.Dict):
      value_type = (typing.get_args(tp) or (str, str))[1]
      kwargs.update(action=_KeyValueAction, value_type=value_type,
                    metavar=meta["metavar"] or "KEY=VALUE")
    elif typing.get_origin(tp) in (list, typing.List):
      kwargs["type"] = _comma_list((typing.get_args(tp) or (str,))[0])
    else:
      kwargs["type"] = meta["parse"] or (tp if tp in (int, float, str) else str)
      if meta["choices"]:
        kwargs["choices"] = meta["choices"]
      if meta["const"] is not None:
        kwargs.update(nargs="?", const=meta["const"])
    target.add_argument(*names, **kwargs)
    if meta["off_flag"]:
      target.add_argument(meta["off_flag"], dest=field.name, action="store_const", const=False,
                          default=argparse.SUPPRESS, help=argparse.SUPPRESS)


def config_parser(cls: Type[Any], prog: str, description: str, epilog: str) -> ArgumentParser:
  """A command's parser: one flag per setting of its config class `cls`."""
  parser = ArgumentParser(prog=prog, description=description, epilog=epilog)
  add_config_flags(parser, cls)
  return parser


def given(cls: Type[Any], args: argparse.Namespace) -> dict:
  """The settings of `cls` given on the command line, by field name."""
  return {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)}


def config_from_flags(cls: Type[T], args: argparse.Namespace, parser: argparse.ArgumentParser,
                      base: Optional[T] = None, **extra: Any) -> T:
  """The config `cls` from parsed flags, laid over `base` (or the defaults).

  A missing required flag is a usage error (exit 2); a bad value raises the
  config's own SettingError, naming the flag (`--num-shards -1: ...`).
  """
  values = {**given(cls, args), **extra}
  if base is None:
    missing = [flag_name(f) for f in _declared(cls)
               if f.metadata["required"] and not values.get(f.name)]
    if missing:
      parser.error(f"the following flags are required: {', '.join(missing)}")
  try:
    return dataclasses.replace(base, **values) if base is not None else cls(**values)
  except configs.SettingError as e:
    raise e.named(flag_namer(cls)) from None
