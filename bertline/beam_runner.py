"""The one place that picks and starts the Beam runner a bertline job runs on.

- Local (no --runner, DirectRunner or direct): Beam 2.77's DirectRunner first
  tries Prism, a Go runner it downloads from the internet at run time;
  bertline never downloads anything, so it runs Beam's own Python FnApiRunner
  directly — what the DirectRunner falls back to — with one worker per core,
  a process each or, for jobs that ask (preprocess), a thread each in one
  process (--direct_num_workers and --direct_running_mode still win). The
  FnApiRunner's gRPC servers bind to every interface ('[::]:0') although its
  workers reach them at 'localhost': while a job runs they are bound to
  loopback only.
- Dask (--runner DaskRunner, from the `dask` extra): on the cluster at
  --dask_client_address, or else on a local cluster of one worker process
  per core that bertline starts on 127.0.0.1 and stops afterwards. Beam's
  Dask runner puts a whole Create in one partition unless told otherwise, so
  bertline asks for one element per partition (--dask_partition_size 1)
  unless --dask_npartitions or --dask_partition_size is given.
- Any other runner (DataflowRunner, ...) runs remote workers, which need
  bertline: unless the job names its own worker environment
  (--sdk_container_image, --extra_package(s), --setup_file,
  --requirements_file), bertline builds its own package and stages it with
  --extra_package (bertline.staging).
"""

from __future__ import annotations

import contextlib
import errno
import importlib
import io
import logging
import os
import re
import shutil
import sys
import tempfile
from typing import Iterator, List, Optional, Sequence

from apache_beam.options import pipeline_options as beam_options
from apache_beam.options.pipeline_options import (DirectOptions, PipelineOptions,
                                                  SetupOptions, StandardOptions, WorkerOptions)
from apache_beam.portability.api import beam_provision_api_pb2
from apache_beam.runners.portability.fn_api_runner import fn_runner, worker_handlers
from apache_beam.runners.portability.portable_runner import JobServiceHandle

from bertline import errors, flags, staging

log = logging.getLogger("bertline.beam")

LOCAL_RUNNERS = (None, "DirectRunner", "direct")
DASK_RUNNERS = ("DaskRunner", "dask", "apache_beam.runners.dask.dask_runner.DaskRunner")


def _runner(options: PipelineOptions) -> Optional[str]:
  return options.view_as(StandardOptions).runner


def is_local(options: PipelineOptions) -> bool:
  return _runner(options) in LOCAL_RUNNERS


def is_dask(options: PipelineOptions) -> bool:
  return _runner(options) in DASK_RUNNERS


def runs_in_this_process(options: PipelineOptions) -> bool:
  """Whether the job's DoFns run in this very process (a local in-memory or threaded run)."""
  return is_local(options) and options.view_as(DirectOptions).direct_running_mode in (
      None, "in_memory", "multi_threading")


def _given(pipeline_args: List[str], *names: str) -> bool:
  return any(arg == name or arg.startswith(name + "=") for arg in pipeline_args for name in names)


def _dask_options():
  try:
    importlib.import_module("dask.distributed")  # Beam's module imports without it, then fails
    from apache_beam.runners.dask.dask_runner import DaskOptions  # the optional dask extra
  except ImportError as e:
    raise ValueError("--runner DaskRunner needs Dask: pip install -e '.[dask]' in your "
                     "bertline clone "
                     f"(missing: {e.name})") from None
  return DaskOptions


def check_args(pipeline_args: Sequence[str], own_flags: Sequence[str] = ()) -> None:
  """Refuses every argument that no Beam options class declares, naming the closest flag.

  Beam itself only logs "Discarding unparseable args" and runs on, so a
  misspelled `--temp_locaton` (or a bertline flag with a typo, which the
  command passed on as Beam's) would be silently ignored. The parser is
  Beam's own, filled the way PipelineOptions.get_all_options fills it, so
  what passes here is what Beam reads. `own_flags` are the command's own
  flags, offered as suggestions too.
  """
  runner = PipelineOptions(list(pipeline_args)).view_as(StandardOptions).runner
  if runner in DASK_RUNNERS:
    _dask_options()  # declares the Dask runner's options
  parser = beam_options._BeamArgumentParser(allow_abbrev=False)  # pylint: disable=protected-access
  seen = {}
  for cls in PipelineOptions.__subclasses__():
    seen.setdefault(str(cls), cls)
  for cls in seen.values():
    cls._add_argparse_args(parser)  # pylint: disable=protected-access
  _, unknown = parser.parse_known_args(list(pipeline_args))
  if unknown:
    beam_flags = [s for action in parser._actions for s in action.option_strings]
    message = flags.unknown_flag_message(unknown[0], list(own_flags) + beam_flags)
    raise errors.UsageError(f"{message} (not a flag of this command, nor a Beam pipeline option)")


LOCAL_MODES = ("multi_processing", "multi_threading")


def pipeline_options(pipeline_args: List[str], save_main_session: bool = True,
                     local_mode: str = "multi_processing",
                     local_work_units: Optional[int] = None) -> PipelineOptions:
  """Beam options for `pipeline_args`, with bertline's defaults for the runner they name.

  local_mode: how a local run uses the cores when --direct_running_mode is not
    given: "multi_processing" (a worker process per core) or "multi_threading"
    (one process, a worker thread per core: for jobs whose work releases the
    GIL, such as preprocess's graph tokenizer, it saves a TensorFlow per core
    in memory and every worker's start-up).
  local_work_units: how many units of work (shards) the job has, when known: a
    local run starts no more workers than that, and a one-unit job runs in
    Beam's in-memory mode, without the workers' gRPC channels.
  """
  if local_mode not in LOCAL_MODES:
    raise ValueError(f"local_mode {local_mode!r}: expected one of {LOCAL_MODES}")
  options = PipelineOptions(pipeline_args)
  options.view_as(SetupOptions).save_main_session = save_main_session
  if is_local(options):
    # Beam's own default is a single in-process worker, which would leave all but one core idle.
    direct = options.view_as(DirectOptions)
    if not _given(pipeline_args, "--direct_num_workers"):
      workers = os.cpu_count() or 1
      if local_work_units:
        workers = min(workers, local_work_units)
      direct.direct_num_workers = workers
    if not _given(pipeline_args, "--direct_running_mode") and direct.direct_num_workers > 1:
      direct.direct_running_mode = local_mode
    if not _given(pipeline_args, "--default_sdk_harness_log_level") and _quiet():
      # Each local worker logs its start-up, channels and shutdown at INFO, a hundred lines a
      # job, relayed to this process's log as well: kept for `bertline --verbose`.
      options.view_as(WorkerOptions).default_sdk_harness_log_level = "WARNING"
  elif is_dask(options):
    dask = options.view_as(_dask_options())
    if not _given(pipeline_args, "--dask_npartitions", "--dask_partition_size"):
      dask.partition_size = 1
  return options


@contextlib.contextmanager
def session(options: PipelineOptions) -> Iterator[Optional[object]]:
  """The runner to build the pipeline with (None: Beam's choice), set up for the job's run."""
  if is_local(options):
    with loopback_servers():
      yield _fn_api_runner(options)
  elif is_dask(options):
    with _dask_cluster(options):
      from apache_beam.runners.dask.dask_runner import DaskRunner  # the optional dask extra
      yield DaskRunner()
  elif _brings_worker_environment(options):
    log.info("Workers use the environment the job's options give.")
    yield None
  else:
    build_dir = tempfile.mkdtemp(prefix="bertline-staging-")
    try:
      package = staging.worker_package(build_dir)
      options.view_as(SetupOptions).extra_packages = [package]
      log.info("Staging %s for the workers (--extra_package); pass --sdk_container_image to "
               "use a prebuilt worker image instead (README: Dataflow).", os.path.basename(package))
      yield None
    finally:
      shutil.rmtree(build_dir, ignore_errors=True)


def _brings_worker_environment(options: PipelineOptions) -> bool:
  """Whether the job names its own worker image or packages (then bertline stages nothing)."""
  setup, worker = options.view_as(SetupOptions), options.view_as(WorkerOptions)
  return bool(setup.extra_packages or setup.setup_file or setup.requirements_file
              or worker.sdk_container_image
              or getattr(worker, "worker_harness_container_image", None))


class _WithoutWorkerTracebacks(io.TextIOBase):
  """stderr, less the tracebacks Beam's in-process workers print of a failed bundle.

  Beam's SDK worker prints each failed bundle's traceback to stderr itself
  (sdk_worker._execute), once per retry; the driver then raises the failure,
  which bertline reports once, in one line with its exit code. With
  `bertline --verbose` (debug logging) nothing is held back.
  """

  def __init__(self, stream):
    super().__init__()
    self._stream = stream

  def write(self, text: str) -> int:
    if text.startswith("Traceback (most recent call last)"):
      return len(text)
    return self._stream.write(text)

  def flush(self) -> None:
    self._stream.flush()


def _quiet() -> bool:
  """Not `bertline --verbose`: Beam's own chatter and worker tracebacks are held back."""
  return not logging.getLogger().isEnabledFor(logging.DEBUG)


@contextlib.contextmanager
def _worker_processes_output() -> Iterator[None]:
  """The local worker processes' own stderr goes to a log file, named only if the job fails.

  A local multi_processing run's workers are subprocesses that inherit this
  process's stderr (file descriptor 2) and print there what they log and
  each failed bundle's traceback, once per retry: ten tracebacks above the
  one line bertline reports a full disk with. While the job runs, descriptor
  2 is the log file (the workers inherit it); this process's own Python
  writes — its log, progress, the final line — go to a copy of the real
  stderr. A worker that dies (the kernel's OOM killer) has its last words
  in the file, which is kept and named when the job fails.
  """
  try:
    fd, path = tempfile.mkstemp(prefix="bertline-beam-workers-", suffix=".log")
  except OSError as e:  # no writable temporary directory: the workers share stderr, as before
    log.debug("The local Beam workers print to stderr (no log file: %s)", e)
    yield
    return
  sys.stderr.flush()
  real = os.dup(2)
  own = None
  swapped = []
  failed = False
  try:
    if _writes_to_fd_2(sys.stderr):
      own = os.fdopen(os.dup(real), "w", buffering=1, encoding=sys.stderr.encoding,
                      errors=sys.stderr.errors)
      swapped = [h for h in logging.getLogger().handlers
                 if isinstance(h, logging.StreamHandler) and h.stream is sys.stderr]
      for handler in swapped:
        handler.setStream(own)
      sys.stderr, before = own, sys.stderr
    os.dup2(fd, 2)
    yield
  except BaseException:
    failed = True
    raise
  finally:
    os.dup2(real, 2)
    os.close(real)
    os.close(fd)
    if own is not None:
      own.flush()
      for handler in swapped:
        handler.setStream(before)
      sys.stderr = before
      own.close()
    if failed and os.path.getsize(path):
      log.info("The local Beam workers' own output: %s", path)
    else:
      os.remove(path)


def _writes_to_fd_2(stream) -> bool:
  try:
    return stream.fileno() == 2
  except (AttributeError, OSError, ValueError):  # StringIO, pytest's capture: not descriptor 2
    return False


def run(pipeline) -> None:
  """Runs a built pipeline to the end; a failed worker raises its own error here."""
  quiet = _quiet()
  options = pipeline.options
  worker_processes = (quiet and is_local(options)
                      and options.view_as(DirectOptions).direct_running_mode == "multi_processing")
  try:
    with _worker_processes_output() if worker_processes else contextlib.nullcontext():
      stderr = sys.stderr
      try:
        if quiet:
          sys.stderr = _WithoutWorkerTracebacks(stderr)
        _run_to_the_end(pipeline)
      finally:
        sys.stderr = stderr
  except RuntimeError as e:
    own = worker_error(e)
    if own is e:
      raise
    raise own from e


def _run_to_the_end(pipeline) -> None:
  result = pipeline.run()
  try:
    result.wait_until_finish()
  finally:
    client = getattr(result, "client", None)  # the Dask runner leaves its client open
    if client is not None:
      client.close()


# The last line of a worker's failure as Beam reports it: "RuntimeError: OSError: [Errno 28] No
# space left on device: '/out/x' [while running 'EncodeShard']".
_WORKER_FAILURE = re.compile(r"^(?:RuntimeError: )?([A-Za-z_.]*(?:Error|Exception)): (.*?)"
                             r"(?: \[while running '([^']*)'\])?$")
_ERRNO = re.compile(r"^\[Errno (\d+)\] (.*?)(?:: '(.*)')?$")
# How TensorFlow's file errors end, and the errno each is.
_TENSORFLOW_ERRNOS = {"No space left on device": errno.ENOSPC,
                      "Read-only file system": errno.EROFS,
                      "Permission denied": errno.EACCES,
                      "Disk quota exceeded": errno.EDQUOT}
# Errors a worker raises that bertline describes in one line (bertline/errors.py).
_RAISED_AGAIN = {"ValueError": ValueError, "FileNotFoundError": FileNotFoundError,
                 "FileExistsError": FileExistsError, "IsADirectoryError": IsADirectoryError,
                 "NotADirectoryError": NotADirectoryError}


def worker_error(error: RuntimeError) -> BaseException:
  """The error a Beam worker raised, as its own type again where bertline knows it.

  Beam hands a worker's exception to the driver as a RuntimeError holding its
  traceback's text. A full disk (OSError errno 28), a read-only file system or
  a bad input a worker found is made its own exception again, so the CLI
  reports it in one line with its exit code; anything else stays as it is.
  """
  lines = [line for line in str(error).strip().splitlines() if line.strip()]
  match = _WORKER_FAILURE.match(lines[-1].strip()) if lines else None
  if not match:
    return error
  kind, message, step = match.groups()
  kind = kind.rsplit(".", 1)[-1]
  where = f" (in Beam step {step})" if step else ""
  errno_match = _ERRNO.match(message)
  if kind in ("OSError", "PermissionError", "IOError") and errno_match:
    number, text, path = errno_match.groups()
    return OSError(int(number), text + where, path)
  for text, number in _TENSORFLOW_ERRNOS.items():  # tf.io's writers: "PATH; No space left..."
    if message.endswith(f"; {text}"):
      return OSError(number, text + where, message[:-len(text) - 2])
  if kind in _RAISED_AGAIN:
    return _RAISED_AGAIN[kind](message + where)
  return error


def _fn_api_runner(options: PipelineOptions):
  """Python's FnApiRunner (no Prism), with the job's options as its workers' provision info."""
  encoded = JobServiceHandle.encode_pipeline_options(options.get_all_options())
  provision = fn_runner.ExtendedProvisionInfo(
      beam_provision_api_pb2.ProvisionInfo(pipeline_options=encoded))
  return fn_runner.FnApiRunner(provision_info=provision)


@contextlib.contextmanager
def _dask_cluster(options: PipelineOptions):
  """With no --dask_client_address: a local cluster on 127.0.0.1 for this job only."""
  dask = options.view_as(_dask_options())
  if dask.address or dask.scheduler_file:
    log.info("Running on the Dask cluster at %s.", dask.address or dask.scheduler_file)
    yield
    return
  from dask.distributed import LocalCluster  # the optional dask extra
  workers = os.cpu_count() or 1
  # One single-threaded process per core: tokenizing holds the GIL. Every server (the
  # scheduler's HTTP endpoint too, which would take :8787) on a free loopback port.
  with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                    dashboard_address="127.0.0.1:0") as cluster:
    log.info("Started a local Dask cluster of %d worker process(es) at %s.", workers,
             cluster.scheduler_address)
    dask.address = cluster.scheduler_address
    try:
      yield
    finally:
      dask.address = None


@contextlib.contextmanager
def loopback_servers():
  """While active, the FnApiRunner's gRPC servers bind to loopback instead of '[::]'."""
  real = worker_handlers.grpc

  class _LoopbackGrpc:
    """The grpc module, but servers listen on localhost only."""

    def __getattr__(self, name):
      return getattr(real, name)

    @staticmethod
    def server(*args, **kwargs):
      server = real.server(*args, **kwargs)
      add_port = server.add_insecure_port

      def add_loopback_port(address: str) -> int:
        address = address.replace("[::]", "localhost").replace("0.0.0.0", "localhost")
        port = add_port(address)
        log.debug("Beam gRPC server listening on %s (port %d)", address, port)
        return port

      server.add_insecure_port = add_loopback_port
      return server

  worker_handlers.grpc = _LoopbackGrpc()
  try:
    yield
  finally:
    worker_handlers.grpc = real
