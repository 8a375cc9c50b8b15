"""The `bertline` command: one subcommand per pipeline stage.

Each subcommand lives in its stage's module as `main(argv) -> int`; this file
only dispatches, importing a stage when it is asked for so that `bertline
--help` answers at once without loading TensorFlow or Beam.
"""

from __future__ import annotations

import argparse
import gc
import importlib
import logging
import os
import re
import signal
import sys
import threading
import traceback
from typing import List, Optional

from bertline import __version__, errors, flags

# name -> (module, one-line summary). Order is the order of the pipeline.
COMMANDS = {
    "preprocess": ("bertline.preprocessing.beam_job",
                   "TSV corpus -> BERT WordPiece features -> sharded TFRecords (Apache Beam)."),
    "pretrain-data": ("bertline.pretraining.data_job",
                      "Raw text -> masked-LM pre-training TFRecords, as create_pretraining_data.py "
                      "(Apache Beam)."),
    "pretrain": ("bertline.pretraining.pretrain",
                 "Masked-LM (+ NSP/SOP) pre-training on pretrain-data output, resumable; "
                 "fine-tune its model_dir."),
    "train": ("bertline.trainer.train",
              "Fine-tune a BERT/ALBERT classifier on preprocess output (tf.distribute, resumable)."),
    "distill": ("bertline.trainer.distill",
                "Distil a fine-tuned model into a student with fewer layers (soft targets)."),
    "evaluate": ("bertline.evaluator.evaluate",
                 "Accuracy, loss and task metrics on a split, and a blessing against thresholds."),
    "predict": ("bertline.evaluator.predict",
                "Class probabilities for every example of a split, as run_classifier writes them."),
    "export": ("bertline.exporter.export",
               "Write a versioned SavedModel: raw-text, features, tf.Example and Classify "
               "signatures."),
    "push": ("bertline.exporter.push",
             "Copy a blessed exported model to a registry (gs:// or local), versioned and atomic."),
    "score": ("bertline.evaluator.batch_score",
              "Score text files with an exported model on Beam (RunInference): JSON lines out."),
    "extract-features": ("bertline.trainer.extract_features",
                         "Per-token vectors of chosen layers, in extract_features.py's JSON-lines format."),
    "run-classifier": ("bertline.pipeline.run_classifier",
                       "google-research/bert's run_classifier.py: its flags, its output files."),
    "run": ("bertline.pipeline.local_run",
            "Run the whole pipeline on this machine from one YAML config."),
    "compile": ("bertline.pipeline.compile",
                "Compile the Kubeflow pipeline to pipeline.yaml."),
    "submit": ("bertline.pipeline.submit",
               "Submit the pipeline to Kubeflow Pipelines or Vertex AI Pipelines."),
    "schedule": ("bertline.pipeline.schedule",
                 "Schedule recurring retraining on Kubeflow or Vertex AI."),
}


# Commands whose module loads TensorFlow at its top take their flags from a module that does
# not: the CLI parses with it first, so `--help` and a misspelled flag answer at once.
FLAGS_MODULES = {"pretrain-data": ("bertline.pretraining.config", "build_parser"),
                 "pretrain": ("bertline.pretraining.config", "pretrain_parser"),
                 "train": ("bertline.trainer.config", "build_parser"),
                 "evaluate": ("bertline.evaluator.config", "evaluate_parser"),
                 "predict": ("bertline.evaluator.config", "predict_parser"),
                 "export": ("bertline.exporter.config", "export_parser"),
                 "push": ("bertline.exporter.config", "push_parser"),
                 "distill": ("bertline.trainer.config", "distill_parser"),
                 "extract-features": ("bertline.trainer.config", "extract_features_parser"),
                 "run": ("bertline.pipeline.config", "run_parser"),
                 "run-classifier": ("bertline.pipeline.run_classifier_config", "build_parser"),
                 "score": ("bertline.evaluator.config", "score_parser")}
# Of those, commands whose other flags are Apache Beam's: their light parser answers --help and
# a bare command; the command itself parses the rest, checking Beam's options.
BEAM_COMMANDS = ("score", "pretrain-data")

# Commands whose loop saves a checkpoint on SIGTERM (trainer/loop.py's Preemption) and exits 143.
TRAINING = ("train", "distill", "pretrain")

# Commands that do their job with no flags at all (compile: the default pipeline.yaml).
RUN_WITHOUT_FLAGS = ("compile",)


def example(parser) -> str:
  """The first example command in a parser's epilog ("example:\n  bertline ...")."""
  match = re.search(r"[Ee]xamples?:\s*(bertline [^\n;]*)", parser.epilog or "")
  return match.group(1).strip() if match else ""


def _usage(command: str, parser) -> int:
  """`bertline COMMAND` alone: its usage and one example, not a wall of errors."""
  sys.stderr.write(parser.format_usage())
  if example(parser):
    sys.stderr.write(f"example: {example(parser)}\n")
  sys.stderr.write(f"Run `bertline {command} --help` for what each flag means.\n")
  return errors.USAGE


def _top_parser() -> flags.ArgumentParser:
  lines = [f"  {name:<17} {summary}" for name, (_, summary) in COMMANDS.items()]
  parser = flags.ArgumentParser(
      prog="bertline",
      formatter_class=argparse.RawDescriptionHelpFormatter,
      description="Fine-tune BERT-family text classifiers as a pipeline of stages:\n"
      "preprocess -> train -> evaluate -> export -> push.",
      epilog="commands:\n" + "\n".join(lines) +
      "\n\nRun `bertline COMMAND --help` for a command's options.\n\n"
      "exit codes: 0 done, 1 internal error (a bug), 2 usage, 3 bad input (config, file, model\n"
      "or data), 4 training diverged, 5 storage refused (disk full, read-only), 6 remote\n"
      "service (credentials, Cloud Storage), 143 interrupted by SIGTERM (training saved a\n"
      "checkpoint; any other command published nothing).",
      usage="bertline [-h] [--version] [--verbose] COMMAND [options]")
  parser.add_argument("--version", action="store_true", help="print the version and exit")
  parser.add_argument("--verbose", action="store_true",
                      help="print the traceback of an error too (and debug logs)")
  parser.add_argument("command", nargs="?", metavar="COMMAND", help=argparse.SUPPRESS)
  return parser


def main(argv: Optional[List[str]] = None) -> int:
  argv = list(sys.argv[1:] if argv is None else argv)
  parser = _top_parser()
  # Only the leading options belong to `bertline`; the rest is the command's.
  split = next((i for i, a in enumerate(argv) if not a.startswith("-")), len(argv))
  args = parser.parse_args(argv[:split + 1])
  if args.version:
    print(f"bertline {__version__}")
    return 0
  if args.command is None:
    parser.print_help()
    return 2
  if args.command not in COMMANDS:
    parser.error(f"unknown command {args.command!r}; choose one of: {', '.join(COMMANDS)}")
  logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                      format="%(asctime)s %(levelname)s %(name)s: %(message)s")
  if not args.verbose:
    _quiet_beam_import_notices()
  module_name, _ = COMMANDS[args.command]
  rest = argv[split + 1:]
  if args.command in FLAGS_MODULES:
    flags_module, make_parser = FLAGS_MODULES[args.command]
    parser = getattr(importlib.import_module(flags_module), make_parser)()
    if not rest:
      return _usage(args.command, parser)
    if args.command not in BEAM_COMMANDS:
      parser.parse_args(rest)
    elif any(arg in ("-h", "--help") for arg in rest[:rest.index("--") if "--" in rest else None]):
      parser.parse_args(["--help"])
  # SIGTERM (a preempted VM, `kill`, a pipeline's cancel) stops the command with its cleanup,
  # from here on (TensorFlow's import included); a training loop replaces this while it runs,
  # to save a checkpoint first.
  in_main_thread = threading.current_thread() is threading.main_thread()
  previous = signal.signal(signal.SIGTERM, errors.raise_terminated) if in_main_thread else None
  try:
    return _run_command(args, module_name, rest)
  except errors.Terminated:
    _INTERRUPTED.append(args.command)
    what = ("before its training loop began (no step was lost)" if args.command in TRAINING
            else "nothing it was writing was published (a partial output is removed)")
    print(f"bertline {args.command}: interrupted by SIGTERM: {what}; re-run the same command.",
          file=sys.stderr)
    return errors.INTERRUPTED
  finally:
    if in_main_thread:
      signal.signal(signal.SIGTERM, previous)  # a caller of main() in-process keeps its own


def _run_command(args: argparse.Namespace, module_name: str, rest: List[str]) -> int:
  module = importlib.import_module(module_name)
  if not rest and args.command not in RUN_WITHOUT_FLAGS:
    return _usage(args.command, module.build_parser())
  try:
    return int(module.main(rest) or 0)
  except Exception as e:  # noqa: BLE001  Every fault ends in one line and its exit code.
    code, message = errors.describe(e)
    if args.verbose or code == errors.INTERNAL:
      traceback.print_exc()  # asked for, or a bug worth reporting whole
    print(f"bertline {args.command}: error: {message}", file=sys.stderr)
    return code


# What importing Apache Beam logs about BigQuery clients bertline never uses: every Beam
# command printed it, even `--help`. Kept with --verbose, as are Beam's worker errors.
_BEAM_IMPORT_NOTICES = ("apitools not found, and bigquery client libraries are not available",
                        "No module named google.cloud.bigquery_storage_v1")


# The local runner's own workings, logged at INFO on every local Beam job: its gRPC servers'
# ports, its type-hint conversions, its in-process workers' channels (preprocess's threads).
# Kept with --verbose.
_BEAM_LOCAL_RUNNER_LOGGERS = ("apache_beam.runners.portability.", "apache_beam.typehints.",
                              "apache_beam.runners.worker.")
# Local workers' log records, relayed to this process's log: those of Beam's own code (its
# start-up notices) are chatter; a bertline DoFn's warning is kept.
_BEAM_WORKER_RELAY = re.compile(r'^Worker: .* log_location: "[^"]*/apache_beam/')


def _quiet_beam_import_notices() -> None:
  def keep(record: logging.LogRecord) -> bool:
    if record.name.startswith("apache_beam.") and record.levelno >= logging.ERROR:
      # A worker's failure, with its traceback, once per retry and per layer of the runner:
      # bertline reports it once, in one line with its exit code (beam_runner.worker_error).
      return False
    if record.name.startswith(_BEAM_LOCAL_RUNNER_LOGGERS) and record.levelno < logging.WARNING:
      return False
    message = record.getMessage()
    if _BEAM_WORKER_RELAY.match(message):
      return False
    return not any(notice in message for notice in _BEAM_IMPORT_NOTICES)
  for handler in logging.getLogger().handlers:
    handler.addFilter(keep)


# Set when SIGTERM stopped the command: console_main then ends the process at once.
_INTERRUPTED: List[str] = []


def console_main() -> None:
  """The `bertline` executable: main(), then exit without the final garbage collections.

  At exit the interpreter runs the cyclic garbage collector over every object
  TensorFlow and Beam created at import — about a second on 2 cores, after the
  work is done, on every command. Freezing them first skips that; atexit
  handlers (logging's flush, Beam's) still run. Only here, where the process
  ends: a caller of main() in a long-lived process keeps its collector.
  """
  code = main()
  if _INTERRUPTED:
    # Beam's worker threads (and TensorFlow's) may still be mid-call: an ordinary exit tears
    # them down under the interpreter's finalization and aborts the process (SIGABRT from
    # C++, seen here) instead of exiting 143. Everything is cleaned up and said by now.
    sys.stdout.flush()
    sys.stderr.flush()
    logging.shutdown()
    os._exit(code)
  gc.freeze()
  sys.exit(code)


if __name__ == "__main__":
  console_main()
