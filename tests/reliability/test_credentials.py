"""Cloud Storage without credentials: one line that says how to authenticate.

No request leaves this machine: NO_GCE_CHECK=True keeps google-auth from probing
the metadata server (and GCE_METADATA_HOST points any probe at a closed loopback
port), and with no key file, no gcloud configuration and no emulator there is
nothing to send a request with.
"""

from bertline import errors
from tests.reliability.conftest import bertline, last_line


def _no_credentials(tmp_path):
  env = {k: "" for k in ("GOOGLE_APPLICATION_CREDENTIALS", "STORAGE_EMULATOR_HOST")}
  env.update(HOME=str(tmp_path), CLOUDSDK_CONFIG=str(tmp_path / "gcloud"), NO_GCE_CHECK="True",
             GCE_METADATA_HOST="127.0.0.1:9", GCE_METADATA_IP="127.0.0.1:9")
  return env


def test_push_to_gcs_without_credentials_says_how_to_authenticate(exported, tmp_path):
  result = bertline("push", "--model", exported["path"], "--to", "gs://bucket/models", "--force",
                    env=_no_credentials(tmp_path))
  assert result.returncode == errors.REMOTE, result.stderr[-2000:]
  line = last_line(result)
  assert "no usable Google credentials" in line
  assert "gcloud auth application-default login" in line and "Traceback" not in result.stderr


def test_preprocess_from_gcs_without_credentials_stops_before_any_request(tmp_path):
  from bertline import resources
  import os
  vocab = os.path.join(resources.minilm_dir(), "vocab.txt")
  result = bertline("preprocess", "--task", "mrpc", "--data-dir", "gs://bucket/glue/MRPC",
                    "--vocab-file", vocab, "--output-dir", str(tmp_path / "out"),
                    env=_no_credentials(tmp_path))
  assert result.returncode == errors.REMOTE, result.stderr[-2000:]
  line = last_line(result)
  assert "no usable Google credentials" in line and "gcloud auth application-default login" in line
  assert "HTTP request" not in result.stderr and not (tmp_path / "out").exists()
