"""Typed dataclass configs that round-trip to JSON/YAML and fail on bad keys.

A config error names the file, the key, the bad value and what would be valid,
and is raised before any work starts.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import re
import typing
from typing import Any, Callable, Dict, Optional, Sequence, Type, TypeVar, Union

import yaml

from bertline import fileio

T = TypeVar("T")


class ConfigError(ValueError):
  """A bad key or value in a config; the message says what to change."""


def as_flag(field: str) -> str:
  """A field's command-line name: max_seq_length -> --max-seq-length."""
  return "--" + field.replace("_", "-")


class SettingError(ConfigError):
  """A bad value of one setting, whose message names the setting wherever it was given.

  The message is a template holding "{key}": the setting's own name by
  default, `--max-seq-length` on a command line, `config.yaml.data.max_seq_length`
  in a run config. A check across settings names the others as "{field:NAME}",
  a bool setting turned off as "{off:NAME}" (`--no-header`, or
  `score.header false`) and an entry of a mapping setting as "{item:ENTRY}"
  (`--threshold acc`, `evaluate.thresholds.acc`), each named the same way. One check, one message,
  every surface named its own way.
  """

  def __init__(self, key: str, template: str, names: Callable[[str], str] = str):
    """`names`: how the message names a field until `named()` says otherwise (as_flag, for a
    check that belongs to one command)."""
    self.key, self.template = key, template
    super().__init__(self._render(names))

  def _render(self, name_of: Callable[[str], str]) -> str:
    def off(field: str) -> str:
      name = name_of(field)
      return "--no-" + name[2:] if name.startswith("--") else f"{name} false"
    def item(entry: str) -> str:  # one entry of a mapping setting: `--threshold acc`, `thresholds.acc`
      name = name_of(self.key)
      return f"{name} {entry}" if name.startswith("--") else f"{name}.{entry}"
    text = re.sub(r"\{item:([^}]*)\}", lambda m: item(m.group(1)), self.template)
    text = re.sub(r"\{off:(\w+)\}", lambda m: off(m.group(1)), text)
    text = re.sub(r"\{field:(\w+)\}", lambda m: name_of(m.group(1)), text)
    return text.replace("{key}", name_of(self.key))

  def named(self, name: Union[str, Callable[[str], str]]) -> "SettingError":
    """The same error, each setting called as `name` calls it (a flag, or a dotted config key).

    `name` is a function from a field name to its name on this surface, or
    the key's own name (other fields keep their bare names).
    """
    if isinstance(name, str):
      key, given = self.key, name
      name = lambda field: given if field == key else field  # noqa: E731
    error = SettingError(self.key, self.template)
    error.args = (self._render(name),)
    return error


# --- settings: a dataclass field that is also a flag, a config key and a kfp parameter ---------
def setting(default: Any = dataclasses.MISSING, help: str = "", *, choices: Sequence[Any] = (),
            minimum: Optional[float] = None, below: str = "", required: bool = False,
            flag: str = "", cli: bool = True, metavar: Optional[str] = None,
            const: Any = None, aliases: Sequence[str] = (), off_flag: str = "",
            repeat: bool = False, parse: Optional[Callable[[str], Any]] = None) -> Any:
  """Declares one setting of a stage's config: its default, check and help text, once.

  Args:
    default: Any. The default value (a list is copied for each instance).
    help: str. What the setting means, for --help and the docs; the default
      and the choices are appended by the flag generator (bertline/flags.py).
    choices: sequence. The valid values, checked by `check_settings`.
    minimum: number. The smallest valid value, checked by `check_settings`.
    below: str. The message when the value is below `minimum`, with "{key}"
      and "{value}" placeholders (default: "{key} must be at least ...").
    required: bool. A command line must give it (it may stay empty in a run
      config, where the pipeline sets it for each run).
    flag: str. The flag's name when it is not --<name with dashes>.
    cli: bool. Whether the command line has a flag for it.
    metavar: str. The flag's value placeholder in --help.
    const: Any. The value of the flag given bare (`--mixed-precision`).
    aliases: sequence of str. Older flag names still accepted (`--project`
      for `--vertex-project`); --help names them.
    off_flag: str. A bool's flag that turns it off, kept from before the
      `--no-<name>` form (`--skip-serving-check` for check_serving).
    repeat: bool. A list given by repeating the flag (`--input a --input b`)
      rather than as comma-separated values.
    parse: callable. Reads the flag's text (argparse's `type`), for a value
      the command line must refuse before anything runs (export's --version).
  """
  metadata = {"help": help, "choices": tuple(choices), "minimum": minimum, "below": below,
              "required": required, "flag": flag, "cli": cli, "metavar": metavar,
              "const": const, "aliases": tuple(aliases), "off_flag": off_flag,
              "repeat": repeat, "parse": parse}
  if isinstance(default, (list, dict)):
    value = default
    return dataclasses.field(default_factory=lambda: copy.deepcopy(value), metadata=metadata)
  return dataclasses.field(default=default, metadata=metadata)


def check_settings(config: Any) -> None:
  """Checks what `setting()` declared of each field: finite numbers, minimums, choices.

  Called by a config's __post_init__ before its own cross-field checks.
  Raises SettingError naming the field.
  """
  for field in dataclasses.fields(config):
    value, meta = getattr(config, field.name), field.metadata
    if isinstance(value, float) and not math.isfinite(value):
      raise SettingError(field.name, f"{{key}} must be a finite number, got {value}.")
    minimum = meta.get("minimum")
    if (minimum is not None and isinstance(value, (int, float)) and not isinstance(value, bool)
        and value < minimum):
      template = meta.get("below") or ("{key} must be 0 or more, got {value}." if minimum == 0
                                       else "{key} must be at least {minimum}, got {value}.")
      raise SettingError(field.name, template.replace("{value}", str(value)).replace(
          "{minimum}", str(minimum)))
    choices = meta.get("choices")
    if choices and value not in choices:
      raise SettingError(field.name, f"{{key}}: {value!r} is not one of "
                         f"{', '.join(map(repr, choices))}")


def run_settings(config: Any) -> Dict[str, Any]:
  """A stage config's settings that a run config gives: every field but its RUN_KEYS.

  RUN_KEYS (a class attribute) are the paths and choices each pipeline run
  sets itself (data_dir, model_dir, ...), so they are not run-config keys.
  """
  return {f.name: getattr(config, f.name) for f in dataclasses.fields(config)
          if f.name not in getattr(type(config), "RUN_KEYS", ())}


def whole_numbers(cls: Type[Any], settings: Dict[str, Any]) -> Dict[str, Any]:
  """`settings` with integral floats made ints again where `cls` declares an int (or Optional).

  kfp hands a dict parameter over as a protobuf Struct, whose numbers are all
  doubles: `seed: 1` arrives as 1.0, which an int setting rightly refuses. A
  float that is not whole is left for the type check to refuse by name. Keys
  come back sorted, so local and Kubeflow runs hash them alike.
  """
  hints = typing.get_type_hints(cls)
  out = {}
  for key, value in sorted(settings.items()):
    wants_int = int in (hints.get(key), *typing.get_args(hints.get(key)))
    if wants_int and isinstance(value, float) and value.is_integer():
      value = int(value)
    out[key] = value
  return out


def from_settings(cls: Type[T], settings: Dict[str, Any], where: str, **run: Any) -> T:
  """`cls` from a `run_settings()` dict (a kfp parameter) and the run's own values."""
  return from_dict(cls, {**whole_numbers(cls, settings), **run}, where=where)


def settings_of(cls: Type[Any], exclude: Sequence[str] = ()) -> Dict[str, Any]:
  """The default value of every field of `cls` but `exclude`, by name."""
  config = cls()
  return {f.name: getattr(config, f.name) for f in dataclasses.fields(cls)
          if f.name not in exclude}


def _check_type(value: Any, tp: Any, where: str) -> Any:
  origin = typing.get_origin(tp)
  args = typing.get_args(tp)
  if tp is Any:
    return value
  if origin is typing.Union:
    if value is None and type(None) in args:
      return None
    errors = []
    for arg in args:
      if arg is type(None):
        continue
      try:
        return _check_type(value, arg, where)
      except ConfigError as e:
        errors.append(str(e))
    raise ConfigError(errors[0] if errors else f"{where}: bad value {value!r}")
  if dataclasses.is_dataclass(tp):
    if not isinstance(value, dict):
      raise ConfigError(f"{where}: expected a mapping, got {value!r}")
    return from_dict(tp, value, where)
  if origin in (list, tuple, typing.List, typing.Sequence):
    if not isinstance(value, (list, tuple)):
      raise ConfigError(f"{where}: expected a list, got {value!r}")
    inner = args[0] if args else Any
    return [_check_type(v, inner, f"{where}[{i}]") for i, v in enumerate(value)]
  if origin in (dict, typing.Dict):
    if not isinstance(value, dict):
      raise ConfigError(f"{where}: expected a mapping, got {value!r}")
    vt = args[1] if len(args) == 2 else Any
    return {k: _check_type(v, vt, f"{where}.{k}") for k, v in value.items()}
  if tp is float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
      raise ConfigError(f"{where}: expected a number, got {value!r}")
    return float(value)
  if tp is int:
    if isinstance(value, bool) or not isinstance(value, int):
      raise ConfigError(f"{where}: expected an integer, got {value!r}")
    return value
  if tp is bool:
    if not isinstance(value, bool):
      raise ConfigError(f"{where}: expected true or false, got {value!r}")
    return value
  if tp is str:
    if not isinstance(value, str):
      raise ConfigError(f"{where}: expected a string, got {value!r}")
    return value
  return value


def from_dict(cls: Type[T], data: Dict[str, Any], where: str = "config", section: str = "") -> T:
  """Builds dataclass `cls` from `data`, checking every key and type.

  A bad value's message names its key by `where` (the file, then the dotted
  path); other keys it mentions are named within their section
  (`push.vertex_project`), `section` being this mapping's dotted path.
  """
  if not isinstance(data, dict):
    raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
  fields = {f.name: f for f in dataclasses.fields(cls)}
  hints = typing.get_type_hints(cls)
  unknown = sorted(set(data) - set(fields))
  if unknown:
    raise ConfigError(f"{where}: unknown key {unknown[0]!r}; valid keys are: {', '.join(sorted(fields))}")
  kwargs = {}
  for name, value in data.items():
    if dataclasses.is_dataclass(hints[name]) and isinstance(value, dict):
      kwargs[name] = from_dict(hints[name], value, f"{where}.{name}",
                               f"{section}.{name}" if section else name)
    else:
      kwargs[name] = _check_type(value, hints[name], f"{where}.{name}")
  missing = [n for n, f in fields.items() if n not in kwargs and
             f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
  if missing:
    raise ConfigError(f"{where}: missing required key {missing[0]!r}")
  try:
    return cls(**kwargs)
  except SettingError as e:
    key = e.key
    raise e.named(lambda field: f"{where}.{field}" if field == key
                  else f"{section}.{field}" if section else field) from None
  except (TypeError, ValueError) as e:
    if isinstance(e, ConfigError):
      raise
    raise ConfigError(f"{where}: {e}") from e


def to_dict(obj: Any) -> Dict[str, Any]:
  return dataclasses.asdict(obj)


def to_json(obj: Any) -> str:
  return json.dumps(to_dict(obj), indent=2, sort_keys=True) + "\n"


def yaml_error(where: str, error: yaml.YAMLError) -> str:
  """PyYAML's four-line message as one: where, line and column (1-based), the problem and
  what it was parsing."""
  mark = getattr(error, "problem_mark", None)
  problem = getattr(error, "problem", None) or str(error).splitlines()[0]
  context = getattr(error, "context", None)
  at = f", line {mark.line + 1}, column {mark.column + 1}" if mark else ""
  return (f"{where}{at}: not valid YAML: {problem}" + (f" ({context})" if context else "")
          + "; fix the file (or quote the value)")


def load_yaml(cls: Type[T], path: str) -> T:
  """Reads a YAML file into `cls`; errors name the file."""
  try:
    data = yaml.safe_load(fileio.read_text(path)) or {}
  except FileNotFoundError as e:
    raise ConfigError(f"config file {path} not found") from e
  except yaml.YAMLError as e:
    raise ConfigError(yaml_error(path, e)) from None
  return from_dict(cls, data, where=path)


def choice(value: str, choices, where: str) -> str:
  """Validates an enumerated string setting."""
  if value not in choices:
    raise ConfigError(f"{where}: {value!r} is not one of {', '.join(map(repr, choices))}")
  return value
