"""A job's exclusive claim on a gs:// output, where there is no flock: one object, created only if
absent, holding its owner and a lease.

The claim object is written with if_generation_match=0, so of two writers only
one creates it; the other reads who holds it and is refused. The holder
renews the lease while it runs (each renewal is preconditioned on the
generation it wrote last, so a renewal never overwrites another's claim); a
claim whose lease has run out belongs to a dead job and is broken by
deleting exactly that generation before claiming again. The holder deletes
its own generation when it finishes, however it finishes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import threading
import time
from typing import Iterator, Tuple

from google.api_core import exceptions as gexceptions
from google.cloud import storage

log = logging.getLogger(__name__)

LEASE_S = 600.0  # a claim not renewed for this long is a dead job's


def split(url: str) -> Tuple[str, str]:
  """gs://bucket/some/dir -> ("bucket", "some/dir")."""
  bucket, _, path = url[len("gs://"):].partition("/")
  return bucket, path.strip("/")


def _record(lease_s: float) -> str:
  return json.dumps({"owner": f"pid {os.getpid()} on {socket.gethostname()}",
                     "expires": time.time() + lease_s})


def _take(blob, lease_s: float, refused: str) -> int:
  """Creates the claim object; returns its generation, or raises FileExistsError."""
  for _ in range(2):  # a second try only after breaking a dead job's claim
    try:
      blob.upload_from_string(_record(lease_s), if_generation_match=0)
      return blob.generation
    except gexceptions.PreconditionFailed:
      pass
    try:
      blob.reload()
      held = json.loads(blob.download_as_bytes(if_generation_match=blob.generation))
    except gexceptions.NotFound:
      continue  # released meanwhile: claim it
    except (gexceptions.PreconditionFailed, ValueError):
      held = {"owner": "another job", "expires": float("inf")}
    if held.get("expires", float("inf")) > time.time():
      raise FileExistsError(f"{refused} ({held.get('owner', 'another job')})")
    log.warning("Breaking the expired claim of %s on gs://%s/%s.", held.get("owner"),
                blob.bucket.name, blob.name)
    with contextlib.suppress(gexceptions.NotFound, gexceptions.PreconditionFailed):
      blob.delete(if_generation_match=blob.generation)
  raise FileExistsError(f"{refused} (another job claimed it at the same moment)")


@contextlib.contextmanager
def claim(directory: str, lock_name: str, refused: str,
          lease_s: float = LEASE_S) -> Iterator[None]:
  """Holds gs://.../<lock_name> while the block runs; FileExistsError(`refused`) if taken."""
  bucket_name, path = split(directory)
  blob = storage.Client().bucket(bucket_name).blob(f"{path}/{lock_name}" if path else lock_name)
  generation = [_take(blob, lease_s, refused)]
  stop = threading.Event()

  def renew():
    while not stop.wait(lease_s / 3):
      try:
        blob.upload_from_string(_record(lease_s), if_generation_match=generation[0])
        generation[0] = blob.generation
      except gexceptions.GoogleAPIError as e:  # broken by another job, or unreachable
        log.error("Could not renew the claim on gs://%s/%s: %s", bucket_name, blob.name, e)
        return

  renewer = threading.Thread(target=renew, name="gcs-claim-renewal", daemon=True)
  renewer.start()
  try:
    yield
  finally:
    stop.set()
    renewer.join()
    with contextlib.suppress(gexceptions.NotFound, gexceptions.PreconditionFailed):
      blob.delete(if_generation_match=generation[0])
