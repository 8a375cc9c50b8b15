"""bertline/gcs_claim.py: one claim per gs:// output, a dead job's expired claim broken, the
holder's lease renewed and its claim gone when it ends.

Played against tests/gcs_fake.py's bucket, which enforces generation preconditions as Cloud
Storage does (gcp-storage-emulator ignores them). Not run: Google's service itself.
"""

import json
import time

import pytest
from google.cloud import storage

from bertline import fileio, gcs_claim
from tests import gcs_fake

OUT = "gs://models/runs/out"
LOCK = ".bertline-score.lock"


@pytest.fixture
def gcs(monkeypatch):
  return gcs_fake.install(monkeypatch, storage)


def _held(bucket):
  blob = bucket.get_blob(f"runs/out/{LOCK}")
  return json.loads(blob.download_as_bytes()) if blob else None


def test_one_claim_per_output_and_it_goes_with_its_holder(gcs):
  with fileio.output_claim(OUT, LOCK, "another `bertline score` is writing to it"):
    held = _held(gcs)
    assert held["owner"].startswith("pid ") and held["expires"] > time.time()
    with pytest.raises(FileExistsError, match=r"^another `bertline score` is writing to it "
                                              rf"\({held['owner']}\)$"):
      with fileio.output_claim(OUT, LOCK, "another `bertline score` is writing to it"):
        pass
  assert _held(gcs) is None  # released
  with pytest.raises(RuntimeError, match="inside"):
    with fileio.output_claim(OUT, LOCK, "busy"):
      raise RuntimeError("a failure inside")
  assert _held(gcs) is None  # released however the block ends


def test_an_expired_claim_is_a_dead_jobs_and_is_broken(gcs):
  gcs.blob(f"runs/out/{LOCK}").upload_from_string(
      json.dumps({"owner": "pid 1 on a-vm-that-died", "expires": time.time() - 1}))
  with fileio.output_claim(OUT, LOCK, "busy"):
    assert _held(gcs)["owner"] != "pid 1 on a-vm-that-died"


def test_the_holder_renews_its_lease_while_it_runs(gcs):
  with gcs_claim.claim(OUT, LOCK, "busy", lease_s=0.9):
    first = _held(gcs)["expires"]
    time.sleep(1.0)  # three renewals' worth
    assert _held(gcs)["expires"] > first
    with pytest.raises(FileExistsError):  # still held: renewed, never expired
      with gcs_claim.claim(OUT, LOCK, "busy", lease_s=0.9):
        pass
