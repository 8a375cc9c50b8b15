"""bertline/errors.py: each anticipated fault is one line and its own exit code; anything else
is INTERNAL, named by its type."""

import errno

import pytest
import tensorflow as tf
from google.auth import exceptions as auth_exceptions

from bertline import errors


@pytest.mark.parametrize("error, code, line", [
    (errors.UsageError("--max-seq-lenght: unknown flag"), errors.USAGE,
     "--max-seq-lenght: unknown flag"),
    (errors.TrainingDiverged("loss became nan at step 7"), errors.DIVERGED,
     "loss became nan at step 7"),
    (errors.RemoteError("Cloud Storage failed after 5 tries"), errors.REMOTE,
     "Cloud Storage failed after 5 tries"),
    (ValueError("data.yaml: unknown key 'x'"), errors.BAD_INPUT, "data.yaml: unknown key 'x'"),
    (FileNotFoundError("no train.tsv in d"), errors.BAD_INPUT, "no train.tsv in d"),
    (OSError(errno.ENOSPC, "No space left on device", "/out/part-0"), errors.STORAGE,
     "no space left on the device (/out/part-0): free space or fix the permissions, then re-run "
     "the same command"),
    (OSError(errno.EROFS, "Read-only file system"), errors.STORAGE,
     "the file system is read-only: free space or fix the permissions, then re-run the same "
     "command"),
    (RuntimeError("boom"), errors.INTERNAL, "RuntimeError: boom"),
])
def test_each_fault_has_its_exit_code_and_one_line(error, code, line):
  assert errors.describe(error) == (code, line)


def test_exit_codes_are_distinct():
  codes = [errors.OK, errors.INTERNAL, errors.USAGE, errors.BAD_INPUT, errors.DIVERGED,
           errors.STORAGE, errors.REMOTE, errors.INTERRUPTED]
  assert len(set(codes)) == len(codes)


def test_missing_credentials_and_tensorflows_file_errors_say_what_to_do():
  code, line = errors.describe(auth_exceptions.DefaultCredentialsError(
      "Your default credentials were not found.\nTo set up ..."))
  assert code == errors.REMOTE and "\n" not in line
  assert line.startswith("no usable Google credentials (Your default credentials were not found.)")
  assert "gcloud auth application-default login" in line
  code, line = errors.describe(tf.errors.DataLossError(None, None, "truncated record at 88"))
  assert (code, line) == (errors.BAD_INPUT, "a file is corrupted or truncated (truncated record "
                          "at 88): restore or regenerate it")
  code, line = errors.describe(tf.errors.PermissionDeniedError(None, None, "403 on gs://b/x"))
  assert code == errors.REMOTE and line.startswith("access refused (403 on gs://b/x)")
  code, line = errors.describe(tf.errors.ResourceExhaustedError(None, None, "OOM"))
  assert code == errors.STORAGE
