"""Two pushes racing to one version on Cloud Storage never mix two models.

gcp-storage-emulator ignores generation preconditions, so the race is played
against a small in-memory bucket that enforces them as Cloud Storage documents
(create-only with if_generation_match=0, deletes of one generation). What is not
tested here: Google's service itself, and the library's retry of a request whose
precondition already held when it was first sent (the service answers 412).
"""

import functools

import pytest
from google.api_core import exceptions as gexc

from bertline import schema
from bertline.exporter import push as push_lib

# These exports are stand-ins (push copies whatever files an export holds), so
# the serving check, which loads a real SavedModel, is off here; it is tested
# on real exports in test_serving_check.py and tests/reliability/test_serving_faults.py.
_push = functools.partial(push_lib.push, check_serving=False)

PREFIX = "models/m/3/"


class _Blob:
  def __init__(self, bucket, name):
    self.bucket, self.name = bucket, name
    self.generation = self.crc32c = None

  def _create(self, data: bytes, if_generation_match):
    self.bucket.before_write(self.name)
    if if_generation_match == 0 and self.name in self.bucket.objects:
      raise gexc.PreconditionFailed(f"{self.name} exists")
    self.bucket.counter += 1
    # crc32c stays None: the real library checks it; these tests are about preconditions.
    self.generation = self.bucket.counter
    self.bucket.objects[self.name] = (self.generation, data)

  def upload_from_filename(self, path, checksum=None, if_generation_match=None, retry=None):
    with open(path, "rb") as f:
      self._create(f.read(), if_generation_match)

  def upload_from_string(self, body, content_type=None, if_generation_match=None, retry=None):
    self._create(body.encode(), if_generation_match)

  def delete(self, if_generation_match=None, retry=None):
    if self.name not in self.bucket.objects:
      raise gexc.NotFound(self.name)
    if if_generation_match is not None and self.bucket.objects[self.name][0] != if_generation_match:
      raise gexc.PreconditionFailed(f"{self.name} is another generation")
    del self.bucket.objects[self.name]


class _Bucket:
  def __init__(self):
    self.name, self.objects, self.counter = "bucket", {}, 0
    self.hooks = {}  # object name -> called before a write to it (another pusher acting)

  def blob(self, name):
    return _Blob(self, name)

  def before_write(self, name):
    hook = self.hooks.pop(name, None)
    if hook:
      hook()


class _Listed:
  def __init__(self, name, generation):
    self.name, self.generation = name, generation


class _Client:
  bucket_ = _Bucket()

  def bucket(self, name):
    return self.bucket_

  def list_blobs(self, bucket_name, prefix="", retry=None):
    return [_Listed(n, g) for n, (g, _) in sorted(self.bucket_.objects.items())
            if n.startswith(prefix)]


@pytest.fixture
def fake_gcs(monkeypatch):
  from google.cloud import storage

  from bertline import fileio
  # The in-memory bucket stands in for the service, so no credentials are involved.
  monkeypatch.setattr(fileio, "check_credentials", lambda *paths: None)
  bucket = _Bucket()
  monkeypatch.setattr(_Client, "bucket_", bucket)
  monkeypatch.setattr(storage, "Client", _Client)
  return bucket


def _export(tmp_path, payload):
  model = tmp_path / payload / "3"
  for rel, data in {"saved_model.pb": b"graph-", "variables/variables.index": b"index-",
                    "variables/variables.data-00000-of-00001": b"data-",
                    "assets/labels.txt": b"a\nb\n"}.items():
    (model / rel).parent.mkdir(parents=True, exist_ok=True)
    (model / rel).write_bytes(data + payload.encode())
  return str(model)


def test_the_loser_of_a_race_fails_and_deletes_only_its_own_objects(fake_gcs, tmp_path):
  ours = _export(tmp_path, "ours")
  # While we upload, the other push creates the object we were about to write.
  foreign = PREFIX + "variables/variables.index"
  fake_gcs.hooks[foreign] = lambda: fake_gcs.objects.__setitem__(foreign, (999, b"index-theirs"))
  with pytest.raises(FileExistsError, match=r"another push of version 3 wrote an object first"):
    _push(ours, "gs://bucket/models/m", force=True)
  assert fake_gcs.objects == {foreign: (999, b"index-theirs")}  # theirs untouched, ours gone


def test_a_marker_written_by_the_other_push_first_is_never_overwritten(fake_gcs, tmp_path):
  ours = _export(tmp_path, "ours")
  marker = PREFIX + schema.PUSH_COMPLETE_MARKER
  fake_gcs.hooks[marker] = lambda: fake_gcs.objects.__setitem__(marker, (777, b"{}"))
  with pytest.raises(FileExistsError):
    _push(ours, "gs://bucket/models/m", force=True)
  assert fake_gcs.objects == {marker: (777, b"{}")}


def test_an_object_replaced_during_the_push_stops_it_before_the_marker(fake_gcs, tmp_path):
  ours = _export(tmp_path, "ours")
  victim = PREFIX + "assets/labels.txt"

  def replace_ours():  # just before saved_model.pb (written last): someone rewrote labels.txt
    gen, _ = fake_gcs.objects[victim]
    fake_gcs.objects[victim] = (gen + 100, b"labels from another model")

  fake_gcs.hooks[PREFIX + "saved_model.pb"] = replace_ours
  with pytest.raises(FileExistsError, match=r"changed during this push"):
    _push(ours, "gs://bucket/models/m", force=True)
  assert PREFIX + schema.PUSH_COMPLETE_MARKER not in fake_gcs.objects
  assert fake_gcs.objects[victim][1] == b"labels from another model"  # not ours to delete


def test_an_unfinished_pushs_objects_are_replaced_by_generation(fake_gcs, tmp_path):
  ours = _export(tmp_path, "ours")
  fake_gcs.objects[PREFIX + "saved_model.pb"] = (5, b"half")
  dest = _push(ours, "gs://bucket/models/m", force=True)
  assert dest == "gs://bucket/models/m/3"
  names = {n[len(PREFIX):] for n in fake_gcs.objects}
  assert schema.PUSH_COMPLETE_MARKER in names and len(names) == 5
  assert fake_gcs.objects[PREFIX + "saved_model.pb"][1] == b"graph-ours"
