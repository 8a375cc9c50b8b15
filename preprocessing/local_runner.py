"""The one place that picks the Beam runner bertline runs on this machine.

Beam 2.77's DirectRunner first tries Prism, a Go runner it downloads from the
internet at run time; bertline never downloads anything. For a local run
(no --runner, DirectRunner or direct) bertline runs Beam's own Python
FnApiRunner directly — what the DirectRunner falls back to — with one worker
process per core (--direct_num_workers and --direct_running_mode still win).

The FnApiRunner's gRPC servers (control, data, state, logging) bind to every
interface ('[::]:0') although its workers reach them at 'localhost': while a
job runs they are bound to loopback only. Any other --runner (DaskRunner,
DataflowRunner, ...) is left to Beam as given.
"""

from __future__ import annotations

import contextlib
import logging
import os
from typing import List, Optional

from apache_beam.options.pipeline_options import (DirectOptions, PipelineOptions,
                                                  StandardOptions)

log = logging.getLogger("bertline.preprocess")

LOCAL_RUNNERS = (None, "DirectRunner", "direct")


def is_local(options: PipelineOptions) -> bool:
  return options.view_as(StandardOptions).runner in LOCAL_RUNNERS


def configure(options: PipelineOptions, pipeline_args: List[str]) -> PipelineOptions:
  """Locally, one worker process per core unless the --direct_* options say otherwise.

  Beam's own default is a single in-process worker, which would leave all but
  one core idle.
  """
  if is_local(options):
    direct = options.view_as(DirectOptions)
    given = " ".join(pipeline_args)
    if "--direct_num_workers" not in given:
      direct.direct_num_workers = os.cpu_count() or 1
    if "--direct_running_mode" not in given and direct.direct_num_workers > 1:
      direct.direct_running_mode = "multi_processing"
  return options


def runner_for(options: PipelineOptions) -> Optional[object]:
  """The runner instance for a local run (Python's FnApiRunner, no Prism); None otherwise."""
  if not is_local(options):
    return None
  from apache_beam.portability.api import beam_provision_api_pb2
  from apache_beam.runners.portability.fn_api_runner import fn_runner
  from apache_beam.runners.portability.portable_runner import JobServiceHandle
  encoded = JobServiceHandle.encode_pipeline_options(options.get_all_options())
  provision = fn_runner.ExtendedProvisionInfo(
      beam_provision_api_pb2.ProvisionInfo(pipeline_options=encoded))
  return fn_runner.FnApiRunner(provision_info=provision)


@contextlib.contextmanager
def loopback_servers():
  """While active, the FnApiRunner's gRPC servers bind to loopback instead of '[::]'."""
  from apache_beam.runners.portability.fn_api_runner import worker_handlers
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
