"""Vertex AI's own directories: AIP_MODEL_DIR is gs://, and `train --export` ships there.

A custom job's AIP_MODEL_DIR is a Cloud Storage path; export writes only
locally, so train exports here and pushes the version up through push's checked,
preconditioned upload — to a real Cloud Storage server on loopback
(gcp-storage-emulator). Not run: Google's service, or a real custom job.
"""

from __future__ import annotations

import json

from bertline import schema
from bertline.trainer import train
from tests.trainer import helpers
from tests.trainer.conftest import lang_records  # noqa: F401  (fixture)


def test_an_export_to_a_gs_model_dir_is_exported_here_and_pushed_there(lang_records, tmp_path,
                                                                       gcs):
  """Vertex AI's AIP_MODEL_DIR is gs://: the version goes up through push's checked upload
  (to a real GCS server on loopback; not run against Google's service)."""
  config = helpers.tiny_model_config(str(tmp_path / "config.json"))
  result = train.run(helpers.train_config(lang_records, tmp_path / "m", config, max_steps=4,
                                          eval_every_steps=4, export=True,
                                          export_dir="gs://models/job/model"))
  version = result.exported.rsplit("/", 1)[-1]
  assert result.exported == f"gs://models/job/model/{version}" and version.isdigit()
  names = {blob.name for blob in gcs.list_blobs("models", prefix=f"job/model/{version}/")}
  assert {f"job/model/{version}/saved_model.pb",
          f"job/model/{version}/{schema.PUSH_COMPLETE_MARKER}"} <= names
  record = json.loads(gcs.bucket("models").blob(
      f"job/model/{version}/{schema.PUSH_COMPLETE_MARKER}").download_as_bytes())
  assert record["forced"] is True  # --export ships the best checkpoint without an evaluation
  assert record["serving_check"]["status"] == "passed"  # it answered its warmup requests first
