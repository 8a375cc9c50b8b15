"""How a bertline command ends: one line that says what to do, and an exit code that says why.

  code  meaning                                                     what to do
  ----  ----------------------------------------------------------  ------------------------------
  0     done
  1     internal error: a bug in bertline (the traceback is shown)  report it
  2     usage: an unknown command or flag, a missing argument        see `bertline COMMAND --help`
  3     bad input: a config key or value, a file, a model or data    fix what the line names
        that cannot be used
  4     training diverged (loss NaN/Inf, float16 overflow at scale  lower the learning rate, or
        1); the last good checkpoint is kept                         change the precision
  5     storage refused: disk full, read-only, permission denied     free space or fix permissions,
                                                                     then re-run (it resumes)
  6     a remote service failed: no credentials, Cloud Storage       authenticate, or re-run later
        errors after retries
  143   interrupted by SIGTERM: a training run saved a checkpoint;   re-run the same command (it
        any other command published nothing and cleaned up           resumes, or starts afresh)

Anticipated faults are turned into one line by `describe`; the traceback is
printed only with `bertline --verbose COMMAND`.
"""

from __future__ import annotations

import errno
import sys
from typing import Tuple

from google.auth import exceptions as auth_exceptions

OK = 0
INTERNAL = 1
USAGE = 2
BAD_INPUT = 3
DIVERGED = 4
STORAGE = 5
REMOTE = 6
INTERRUPTED = 143

_STORAGE_ERRNOS = {errno.ENOSPC: "no space left on the device",
                   errno.EROFS: "the file system is read-only",
                   errno.EACCES: "permission denied",
                   errno.EPERM: "operation not permitted",
                   errno.EDQUOT: "disk quota exceeded",
                   errno.EIO: "input/output error"}

AUTH_HINT = ("authenticate with `gcloud auth application-default login` (or run where a service "
             "account is attached, or set GOOGLE_APPLICATION_CREDENTIALS to a key file)")


class TrainingDiverged(ValueError):
  """The loss became NaN or Inf (or float16 overflowed at scale 1); the last good checkpoint is kept."""


class Terminated(BaseException):
  """SIGTERM arrived outside a training loop (which saves a checkpoint first instead).

  A BaseException, as KeyboardInterrupt is: no `except Exception` may swallow
  it, and every `finally` and cleanup on the way out runs.
  """


def raise_terminated(signum, frame) -> None:
  """The CLI's SIGTERM handler: stop where the main thread is, cleaning up on the way out."""
  raise Terminated()


class UsageError(ValueError):
  """A command line bertline cannot take: an unknown or misspelled flag, found before any work."""


class RemoteError(RuntimeError):
  """A remote service (Cloud Storage, ...) failed after retries, or refused our credentials."""


def describe(error: BaseException) -> Tuple[int, str]:
  """(exit code, one-line message) for an anticipated fault; (INTERNAL, ...) otherwise."""
  if isinstance(error, UsageError):
    return USAGE, str(error)
  if isinstance(error, TrainingDiverged):
    return DIVERGED, str(error)
  if isinstance(error, RemoteError):
    return REMOTE, str(error)
  auth = _auth_error(error)
  if auth:
    return REMOTE, auth
  if isinstance(error, OSError) and error.errno in _STORAGE_ERRNOS:
    where = f" ({error.filename})" if error.filename else ""
    return STORAGE, (f"{_STORAGE_ERRNOS[error.errno]}{where}: free space or fix the "
                     "permissions, then re-run the same command")
  if isinstance(error, (ValueError, FileNotFoundError, FileExistsError, NotADirectoryError,
                        IsADirectoryError)):
    return BAD_INPUT, str(error)
  tf_error = _tensorflow_error(error)
  if tf_error:
    return tf_error
  return INTERNAL, f"{type(error).__name__}: {error}"


def _tensorflow_error(error: BaseException):
  """TensorFlow's file-system errors (tf.io.gfile on local paths and gs://) as (code, line)."""
  tf = sys.modules.get("tensorflow")
  if tf is None or not isinstance(error, tf.errors.OpError):
    return None
  first = (error.message or type(error).__name__).splitlines()[0]
  if isinstance(error, (tf.errors.PermissionDeniedError, tf.errors.UnauthenticatedError)):
    return REMOTE, f"access refused ({first}): {AUTH_HINT}"
  if isinstance(error, tf.errors.FailedPreconditionError) and "credential" in first.lower():
    return REMOTE, f"no usable Google credentials ({first}): {AUTH_HINT}"
  if "HTTP request" in first or "Could not resolve host" in first:
    return REMOTE, (f"could not reach Cloud Storage ({first}): check the network, then "
                    f"{AUTH_HINT}")
  if isinstance(error, tf.errors.DataLossError):
    return BAD_INPUT, f"a file is corrupted or truncated ({first}): restore or regenerate it"
  if isinstance(error, tf.errors.NotFoundError):
    return BAD_INPUT, f"not found: {first}"
  if isinstance(error, tf.errors.ResourceExhaustedError):
    return STORAGE, f"out of resources ({first}): free memory or disk, then re-run"
  return None


def _auth_error(error: BaseException) -> str:
  """The message for missing or refused Google credentials ("" when it is not that)."""
  if isinstance(error, (auth_exceptions.DefaultCredentialsError,
                        auth_exceptions.RefreshError)):
    return f"no usable Google credentials ({str(error).splitlines()[0]}): {AUTH_HINT}"
  return ""
