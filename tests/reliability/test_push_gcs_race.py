"""Two pushes racing to one version on Cloud Storage never mix two models.

gcp-storage-emulator ignores generation preconditions, so the race is played
against a small in-memory bucket that enforces them as Cloud Storage documents
(create-only with if_generation_match=0, deletes of one generation). What is not
tested here: Google's service itself, and the library's retry of a request whose
precondition already held when it was first sent (the service answers 412).
"""

import functools

import pytest

from bertline import schema
from tests import gcs_fake
from bertline.exporter import push as push_lib

# These exports are stand-ins (push copies whatever files an export holds), so
# the serving check, which loads a real SavedModel, is off here; it is tested
# on real exports in test_serving_check.py and tests/reliability/test_serving_faults.py.
_push = functools.partial(push_lib.push, check_serving=False)

PREFIX = "models/m/3/"


@pytest.fixture
def fake_gcs(monkeypatch):
  from google.cloud import storage

  from bertline import fileio
  # The in-memory bucket stands in for the service, so no credentials are involved.
  monkeypatch.setattr(fileio, "check_credentials", lambda *paths: None)
  return gcs_fake.install(monkeypatch, storage)


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
