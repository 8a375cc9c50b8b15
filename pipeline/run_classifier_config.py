"""`bertline run-classifier`'s settings: google-research/bert's run_classifier.py flags, verbatim.

A user's shell script calls `python run_classifier.py --task_name=MRPC
--do_train=true ...`; changing `python run_classifier.py` into `bertline
run-classifier` must be the only edit. So this command keeps absl's syntax
(`--flag=value`, `--flag value`, `-flag`, `--do_train`, `--nodo_train`,
`--do_train=true`), run_classifier.py's flag names and defaults, and refuses
any other flag with the closest name. Each flag is declared once below with
`configs.setting()`, as every stage's settings are. No TensorFlow here:
`--help` and a misspelled flag answer at once.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import textwrap
import typing
from typing import Any, Dict, Optional, Sequence

from bertline import configs, flags
from bertline.configs import setting

# absl's spellings of a boolean's value.
_TRUE = ("true", "t", "1", "yes", "y")
_FALSE = ("false", "f", "0", "no", "n")
# Flags run_classifier.py has that a TF2 program has no use for: tf.distribute's TPUStrategy
# finds the TPU's cores and runs its own loop, and there is no TF1 master to name.
_NO_EFFECT = "accepted as run_classifier.py takes it; no effect under tf.distribute"


@dataclasses.dataclass
class RunClassifierConfig:
  """Every flag of run_classifier.py (bert-tensorflow 1.0.4), its default and meaning."""

  data_dir: str = setting("", "the input data dir: the task's .tsv files", required=True)
  bert_config_file: str = setting("", "the pretrained model's bert_config.json (its "
                                  "architecture)", required=True)
  task_name: str = setting("", "the task: cola, mnli, mrpc, xnli (run_classifier's) or sst-2, "
                           "chnsenticorp, lcqmc", required=True)
  vocab_file: str = setting("", "the vocab.txt the model was trained on", required=True)
  output_dir: str = setting("", "where checkpoints, the .tf_record files, eval_results.txt and "
                            "test_results.tsv go", required=True)
  init_checkpoint: str = setting("", "initial checkpoint, usually the pretrained model's "
                                 "bert_model.ckpt (empty: random weights)")
  do_lower_case: bool = setting(True, "lower-case the input: true for uncased models, false "
                                "for cased")
  max_seq_length: int = setting(128, "tokens per example after WordPiece; longer inputs are "
                                "truncated, shorter padded", minimum=3)
  do_train: bool = setting(False, "fine-tune on train.tsv")
  do_eval: bool = setting(False, "evaluate on the dev set: eval_results.txt")
  do_predict: bool = setting(False, "predict the test set: test_results.tsv")
  train_batch_size: int = setting(32, "total batch size for training", minimum=1)
  eval_batch_size: int = setting(8, "total batch size for eval", minimum=1)
  predict_batch_size: int = setting(8, "total batch size for predict", minimum=1)
  learning_rate: float = setting(5e-5, "the initial learning rate for Adam", minimum=0)
  num_train_epochs: float = setting(3.0, "total number of training epochs", minimum=0)
  warmup_proportion: float = setting(0.1, "proportion of training with linear learning-rate "
                                     "warmup", minimum=0)
  save_checkpoints_steps: int = setting(1000, "how often to save a checkpoint", minimum=1)
  iterations_per_loop: int = setting(1000, _NO_EFFECT, minimum=1)
  use_tpu: bool = setting(False, "train on a Cloud TPU (tf.distribute's TPUStrategy)")
  tpu_name: str = setting("", "the Cloud TPU: its name or grpc://ip:8470")
  tpu_zone: str = setting("", "the Cloud TPU's GCE zone")
  gcp_project: str = setting("", "the Cloud TPU's project")
  master: str = setting("", _NO_EFFECT)
  num_tpu_cores: int = setting(8, _NO_EFFECT, minimum=1)
  tpu_job_name: str = setting("", _NO_EFFECT)

  def __post_init__(self):
    configs.check_settings(self)
    if not 0 <= self.warmup_proportion < 1:
      raise configs.SettingError("warmup_proportion", "{key} must be in [0, 1), got "
                                 f"{self.warmup_proportion}.")


def flag_of(field: str) -> str:
  """A setting's name on run_classifier's command line: --task_name, as absl spells it."""
  return f"--{field}"


class AbslParser:
  """run_classifier.py's command line as absl reads it, refusing what absl would refuse.

  The small surface bertline's CLI asks of a parser: parse_args, format_usage,
  print_help, error and an epilog with an example.
  """

  prog = "bertline run-classifier"
  epilog = ("example: bertline run-classifier --task_name=MRPC --do_train=true --do_eval=true "
            "--data_dir=glue/MRPC --vocab_file=$BERT/vocab.txt "
            "--bert_config_file=$BERT/bert_config.json --init_checkpoint=$BERT/bert_model.ckpt "
            "--max_seq_length=128 --train_batch_size=32 --learning_rate=2e-5 "
            "--num_train_epochs=3.0 --output_dir=/tmp/mrpc_output/")

  def __init__(self):
    self.fields = {f.name: f for f in dataclasses.fields(RunClassifierConfig)}
    self.types = typing.get_type_hints(RunClassifierConfig)

  def flag_names(self):
    return [flag_of(name) for name in self.fields]

  def format_usage(self) -> str:
    required = " ".join(f"{flag_of(n)}=..." for n, f in self.fields.items()
                        if f.metadata["required"])
    return f"usage: {self.prog} {required} [--do_train] [--do_eval] [--do_predict] [flags]\n"

  def format_help(self) -> str:
    lines = [self.format_usage(),
             "google-research/bert's run_classifier.py on bertline's stages: the same flags, in "
             "absl's syntax\n(--flag=value, --flag value, --do_train, --nodo_train), and the "
             "same output files.\n", "flags:"]
    for name, f in self.fields.items():
      default = f.default
      shown = ("[required]" if f.metadata["required"] else
               f"(default: {str(default).lower() if isinstance(default, bool) else default!r})")
      lines.append(textwrap.fill(f"{f.metadata['help']} {shown}", 100,
                                 initial_indent=f"  {flag_of(name):<26} ",
                                 subsequent_indent=" " * 29))
    lines += ["", self.epilog, "See docs/coming-from.md for what each flag becomes in bertline."]
    return "\n".join(lines) + "\n"

  def print_help(self) -> None:
    sys.stdout.write(self.format_help())

  def error(self, message: str) -> typing.NoReturn:
    sys.stderr.write(f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")
    sys.exit(flags.USAGE)

  def _value(self, name: str, text: Optional[str], flag: str) -> Any:
    tp = self.types[name]
    if tp is bool:
      if text is None:
        return True
      if text.lower() in _TRUE + _FALSE:
        return text.lower() in _TRUE
      self.error(f"{flag}={text}: expected true or false")
    try:
      return tp(text)
    except ValueError:
      kind = "an integer" if tp is int else "a number" if tp is float else "a value"
      self.error(f"{flag}={text}: expected {kind}")

  def _split(self, arg: str) -> tuple:
    """("--do_train=true") -> (field name, its text or None), absl's negation included."""
    body = arg.lstrip("-")
    name, eq, text = body.partition("=")
    if name not in self.fields and name.startswith("no") and name[2:] in self.fields \
        and self.types[name[2:]] is bool and not eq:
      return name[2:], "false"
    if name not in self.fields:
      self.error(flags.unknown_flag_message(
          "--" + name, [flag_of(n) for n in self.fields] + ["--help"]))
    return name, (text if eq else None)

  def parse_args(self, argv: Sequence[str]) -> argparse.Namespace:
    values: Dict[str, Any] = {}
    args = list(argv)
    i = 0
    while i < len(args):
      arg = args[i]
      i += 1
      if arg in ("-h", "--help", "-help", "--helpfull", "--helpshort"):
        self.print_help()
        sys.exit(0)
      if not arg.startswith("-") or arg in ("-", "--"):
        self.error(f"unexpected argument {arg!r}: run_classifier.py takes flags only")
      name, text = self._split(arg)
      if text is None and self.types[name] is not bool:
        if i == len(args):
          self.error(f"{flag_of(name)} needs a value")
        text = args[i]
        i += 1
      values[name] = self._value(name, text, flag_of(name))
    return argparse.Namespace(**values)


def build_parser() -> AbslParser:
  return AbslParser()


def config_from_args(argv: Sequence[str]) -> RunClassifierConfig:
  """The config from run_classifier.py's command line; a missing required flag is exit 2."""
  parser = build_parser()
  values = vars(parser.parse_args(argv))
  missing = [flag_of(n) for n, f in parser.fields.items()
             if f.metadata["required"] and not values.get(n)]
  if missing:
    parser.error(f"flag {missing[0]} must have a value other than None (absl's words: it is "
                 f"required){'; also ' + ', '.join(missing[1:]) if missing[1:] else ''}")
  try:
    return RunClassifierConfig(**values)
  except configs.SettingError as e:
    raise e.named(flag_of) from None
