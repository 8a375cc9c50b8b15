"""push against a real GCS server (gcp-storage-emulator on loopback) and local paths.

push is agnostic of what it copies, so these tests use a small stand-in export
directory with the files of a SavedModel; the real export is pushed in
test_export.py.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import os
import socket

import pytest

from bertline import cli, errors, schema
from bertline.evaluator import blessing as blessing_lib
from bertline.exporter import push as push_lib

# These exports are stand-ins (push copies whatever files an export holds), so
# the serving check, which loads a real SavedModel, is off here; it is tested
# on real exports in test_serving_check.py and tests/reliability/test_serving_faults.py.
_push = functools.partial(push_lib.push, check_serving=False)


@pytest.fixture(autouse=True)
def no_backoff_wait(monkeypatch):
  """google-api-core's retry sleeps (jittered exponential backoff): recorded, not slept."""
  import time
  import types
  from google.api_core.retry import retry_unary
  waits = []
  monkeypatch.setattr(retry_unary, "time", types.SimpleNamespace(sleep=waits.append,
                                                                 monotonic=time.monotonic))
  return waits


def _export(root, version="1700000000", blessed=True, payload=b"weights"):
  """A stand-in export version dir with a blessing inside, like bertline export writes."""
  model = root / version
  files = {
      "saved_model.pb": b"graph-" + payload,
      "fingerprint.pb": b"fp",
      "variables/variables.index": b"index-" + payload,
      "variables/variables.data-00000-of-00001": os.urandom(300_000) + payload,
      "assets/vocab.txt": "[PAD]\n[UNK]\nhé\n".encode(),
  }
  for rel, data in files.items():
    (model / rel).parent.mkdir(parents=True, exist_ok=True)
    (model / rel).write_bytes(data)
  candidate = {"eval_accuracy": 0.95 if blessed else 0.5}
  decision = blessing_lib.decide(candidate, {"eval_accuracy": 0.9})
  assert decision["blessed"] == blessed
  blessing_lib.write(str(model / "assets.extra"), decision)
  return str(model)


def _tree(model):
  out = {}
  for root, _, names in os.walk(model):
    for name in names:
      path = os.path.join(root, name)
      out[os.path.relpath(path, model)] = open(path, "rb").read()
  return out


def _bucket_tree(client, prefix):
  return {b.name[len(prefix):]: b.download_as_bytes()
          for b in client.list_blobs("models", prefix=prefix)}


def test_gcs_push_uploads_verifies_and_marks_complete_last(gcs, tmp_path):
  model = _export(tmp_path)
  dest = _push(model, "gs://models/sentiment")
  assert dest == "gs://models/sentiment/1700000000"
  got = _bucket_tree(gcs, "sentiment/1700000000/")
  record = json.loads(got.pop(schema.PUSH_COMPLETE_MARKER))
  assert got == _tree(model)
  assert record["blessed"] is True and record["forced"] is False
  for rel, data in got.items():
    assert record["files"][rel]["sha256"] == hashlib.sha256(data).hexdigest()
    blob = gcs.bucket("models").get_blob("sentiment/1700000000/" + rel)
    assert blob.md5_hash == base64.b64encode(hashlib.md5(data).digest()).decode()
  # The marker was written after every file, and saved_model.pb after the rest.
  blobs = {b.name.rsplit("/1700000000/", 1)[1]: b for b in gcs.list_blobs("models", prefix="sentiment/")}
  order = sorted(blobs, key=lambda n: blobs[n].generation)
  assert order[-1] == schema.PUSH_COMPLETE_MARKER and order[-2] == "saved_model.pb"

  # A pushed version is never modified, even by a different model with that version.
  generations = {n: b.generation for n, b in blobs.items()}
  other = _export(tmp_path / "other", payload=b"other")
  with pytest.raises(FileExistsError, match="already pushed"):
    _push(other, "gs://models/sentiment", force=True)
  assert {b.name.rsplit("/1700000000/", 1)[1]: b.generation
          for b in gcs.list_blobs("models", prefix="sentiment/")} == generations
  assert _push(other, "gs://models/sentiment2") == "gs://models/sentiment2/1700000000"


def test_interrupted_upload_is_replaced_by_a_rerun(gcs, tmp_path, monkeypatch):
  from google.cloud.storage import Blob
  first = _export(tmp_path / "a", version="7", payload=b"first attempt")
  real_upload = Blob.upload_from_filename
  calls = []

  def dies_on_third(self, *args, **kwargs):
    calls.append(self.name)
    if len(calls) == 3:
      raise KeyboardInterrupt  # the machine went away mid-push
    return real_upload(self, *args, **kwargs)

  monkeypatch.setattr(Blob, "upload_from_filename", dies_on_third)
  with pytest.raises(KeyboardInterrupt):
    _push(first, "gs://models/interrupted")
  partial = _bucket_tree(gcs, "interrupted/7/")
  assert len(partial) == 2 and schema.PUSH_COMPLETE_MARKER not in partial
  assert "saved_model.pb" not in partial  # TF Serving would not try to load it
  monkeypatch.setattr(Blob, "upload_from_filename", real_upload)

  # The re-run (here of a re-exported model) replaces the unfinished push.
  second = _export(tmp_path / "b", version="7", payload=b"second attempt")
  _push(second, "gs://models/interrupted")
  got = _bucket_tree(gcs, "interrupted/7/")
  record = json.loads(got.pop(schema.PUSH_COMPLETE_MARKER))
  assert got == _tree(second)
  assert record["source"] == os.path.abspath(second)


def test_dropped_connections_are_retried_by_the_storage_librarys_policy(gcs, tmp_path, monkeypatch,
                                                                       no_backoff_wait):
  import requests
  model = _export(tmp_path, version="3")
  real = requests.Session.request
  dropped = []

  def flaky(self, method, url, *args, **kwargs):
    if "upload" in url and len(dropped) < 2:  # the first two upload requests are cut
      dropped.append(url)
      raise requests.ConnectionError("connection reset by peer")
    return real(self, method, url, *args, **kwargs)

  monkeypatch.setattr(requests.Session, "request", flaky)
  _push(model, "gs://models/flaky")
  assert len(dropped) == 2 and len(no_backoff_wait) == 2  # retried after a backoff, twice
  got = _bucket_tree(gcs, "flaky/3/")
  got.pop(schema.PUSH_COMPLETE_MARKER)
  assert got == _tree(model)


def test_a_checksum_mismatch_fails_and_removes_this_pushs_objects(gcs, tmp_path, monkeypatch):
  model = _export(tmp_path, version="4")
  real = push_lib._file_digests
  monkeypatch.setattr(push_lib, "_file_digests",
                      lambda p: {**real(p), "crc32c": "AAAAAA=="} if p.endswith("fingerprint.pb") else real(p))
  with pytest.raises(errors.RemoteError, match=r"pushing .* failed \(ChecksumMismatch: .*crc32c"):
    _push(model, "gs://models/corrupt")
  assert _bucket_tree(gcs, "corrupt/4/") == {}  # no marker, and nothing of this push left


def test_unblessed_needs_force_which_is_recorded(gcs, tmp_path):
  model = _export(tmp_path, version="5", blessed=False)
  with pytest.raises(ValueError, match=r"not blessed .*FAIL eval_accuracy 0.5 < 0.9.*--force"):
    _push(model, "gs://models/gate")
  assert _bucket_tree(gcs, "gate/") == {}
  _push(model, "gs://models/gate", force=True)
  record = json.loads(_bucket_tree(gcs, "gate/5/")[schema.PUSH_COMPLETE_MARKER])
  assert record["forced"] is True and record["blessed"] is False
  assert any(r.startswith("FAIL eval_accuracy") for r in record["blessing_reasons"])


def test_bad_input_is_a_clear_cli_error(gcs, tmp_path, capsys):
  model = _export(tmp_path, version="6")
  assert cli.main(["push", "--skip-serving-check", "--model", model, "--to", "gs://no-such-bucket/m"]) == errors.BAD_INPUT
  assert "bucket gs://no-such-bucket does not exist" in capsys.readouterr().err
  (tmp_path / "x").mkdir()
  (tmp_path / "x" / "saved_model.pb").write_bytes(b"")
  assert cli.main(["push", "--skip-serving-check", "--model", str(tmp_path / "x"), "--to", str(tmp_path / "r")]) == errors.BAD_INPUT
  assert "'x' is not a numeric version" in capsys.readouterr().err
  os.remove(os.path.join(model, push_lib.EXPORT_BLESSING))
  assert cli.main(["push", "--skip-serving-check", "--model", model, "--to", str(tmp_path / "r")]) == errors.BAD_INPUT
  assert "No blessing" in capsys.readouterr().err
  assert not os.path.exists(tmp_path / "r" / "6")


def test_local_target_is_atomic_and_never_overwritten(tmp_path, monkeypatch):
  model = _export(tmp_path / "src", version="11")
  registry = tmp_path / "registry"
  real_copy = push_lib.shutil.copyfile
  copies = []

  def dies_on_second(src, dst):
    copies.append(src)
    if len(copies) == 2:
      raise OSError("disk full")
    return real_copy(src, dst)

  monkeypatch.setattr(push_lib.shutil, "copyfile", dies_on_second)
  with pytest.raises(OSError, match="disk full"):
    _push(model, str(registry))
  assert not (registry / "11").exists()  # readers see nothing of it
  # and the failed push removed its own staging: a full disk is not left full
  assert [p for p in os.listdir(registry) if p.startswith(".11.partial-")] == []
  monkeypatch.setattr(push_lib.shutil, "copyfile", real_copy)

  dest = _push(model, "file://" + str(registry), blessing=os.path.join(model, push_lib.EXPORT_BLESSING))
  assert dest == str(registry / "11")
  # Only the version (and its hidden claim file, which TF Serving ignores).
  assert sorted(os.listdir(registry)) == [".11.lock", "11"]
  got = _tree(dest)
  record = json.loads(got.pop(schema.PUSH_COMPLETE_MARKER))
  assert got == _tree(model)
  assert record["files"]["saved_model.pb"]["sha256"] == hashlib.sha256(got["saved_model.pb"]).hexdigest()
  assert push_lib.read_push_record(dest) == record
  with pytest.raises(FileNotFoundError, match="not a completed push"):
    push_lib.read_push_record(model)
  before = _tree(dest)
  with pytest.raises(FileExistsError, match="already pushed"):
    _push(model, str(registry), force=True)
  assert _tree(dest) == before


def test_unreachable_server_is_retried_then_a_clear_error(tmp_path, monkeypatch, no_backoff_wait):
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]  # nothing listens here once the socket is closed
  monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{port}")
  monkeypatch.setattr(push_lib, "GCS_RETRY_TIMEOUT_S", 1.0)
  model = _export(tmp_path, version="8")
  with pytest.raises(errors.RemoteError, match=r"listing gs://models/x/8 failed \(RetryError: "
                     r".*after retries"):
    _push(model, "gs://models/x")
  assert no_backoff_wait  # retried with backoff before giving up
