"""gcp-storage-emulator on loopback, keeping Cloud Storage's generation preconditions.

The emulator is a real HTTP server that the real google-cloud-storage client
talks to from any process, but it ignores `ifGenerationMatch`: every create
succeeds and every delete deletes. Here each request first checks the
precondition as Cloud Storage documents it (412 conditionNotMet when the live
object's generation differs; 0 means "no live object"), under one lock with
the request itself, so two processes racing for one object see what they
would see on Google's service. What differs: a resumable upload's
precondition is checked when it starts, not when it is finalized (claims
and markers are small, single-request uploads).
"""

from __future__ import annotations

import contextlib
import functools
import os
import socket
import threading
from http import HTTPStatus
from typing import Iterator

from gcp_storage_emulator import server as emulator
from gcp_storage_emulator.exceptions import NotFound


def _object_name(request) -> str:
  if request.params.get("object_id"):
    return request.params["object_id"]
  if "name" in request.query:
    return request.query["name"][0]
  data = request.data  # a multipart upload names its object in its metadata part
  return (data.get("meta") or {}).get("name", "") if isinstance(data, dict) else ""


def _generation(storage, bucket: str, name: str) -> int:
  try:
    return int(storage.get_file_obj(bucket, name)["generation"])
  except NotFound:
    return 0


def _preconditioned(handler, lock: threading.Lock):
  @functools.wraps(handler)
  def handle(request, response, storage, *args, **kwargs):
    with lock:
      wanted = request.query.get("ifGenerationMatch")
      if wanted and "upload_id" not in request.query:
        bucket = request.params["bucket_name"]
        if _generation(storage, bucket, _object_name(request)) != int(wanted[0]):
          response.status = HTTPStatus.PRECONDITION_FAILED
          response.json({"error": {"code": 412, "message": "conditionNotMet",
                                   "errors": [{"reason": "conditionNotMet"}]}})
          return None
      return handler(request, response, storage, *args, **kwargs)
  return handle


@contextlib.contextmanager
def running() -> Iterator[str]:
  """Starts the emulator (in memory, bucket "models") with preconditions; yields its URL."""
  lock = threading.Lock()
  handlers = tuple((regex, {method: _preconditioned(h, lock) for method, h in by_method.items()})
                   for regex, by_method in emulator.HANDLERS)
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
  original = emulator.HANDLERS
  emulator.HANDLERS = handlers  # the Router looks the table up on every request
  server = emulator.create_server("127.0.0.1", port, in_memory=True,
                                  default_bucket="models")
  server.start()
  try:
    yield f"http://127.0.0.1:{port}"
  finally:
    server.stop()
    emulator.HANDLERS = original


def environment(url: str) -> dict:
  """A child process's environment that reaches this emulator, and no Google service."""
  return dict(os.environ, STORAGE_EMULATOR_HOST=url, NO_GCE_CHECK="True",
              GOOGLE_CLOUD_PROJECT="test")
