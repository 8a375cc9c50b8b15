"""File helpers that work on local paths and on gs:// alike (through tf.io.gfile).

Every output bertline writes goes through `write_*_atomic`: readers see the old
file or the whole new one, never half a file.
"""

from __future__ import annotations

import contextlib
import fcntl
import glob as _glob
import hashlib
import json
import math
import os
import posixpath
import shutil
import socket
import stat
import uuid
from typing import Any, List

import google.auth


def is_remote(path: str) -> bool:
  """gs://, s3://, hdfs://... (read through tf.io.gfile) rather than a local path."""
  return "://" in path


def _gfile():
  import tensorflow as tf  # Lazily: plain local paths need no TensorFlow.
  return tf.io.gfile


def join(*parts: str) -> str:
  if parts and is_remote(parts[0]):
    return posixpath.join(*parts)
  return os.path.join(*parts)


def exists(path: str) -> bool:
  return _gfile().exists(path) if is_remote(path) else os.path.exists(path)


def check_credentials(*paths: str) -> None:
  """Before touching gs:// paths: Application Default Credentials must exist.

  Without them TensorFlow's file system goes on to call Cloud Storage
  anonymously and fails with a low-level HTTP error; google-auth's own error
  (DefaultCredentialsError) becomes one line saying how to authenticate
  (bertline.errors). Nothing is checked for local paths or an emulator.
  """
  if not any(p.startswith("gs://") for p in paths if p) or os.environ.get("STORAGE_EMULATOR_HOST"):
    return
  google.auth.default(scopes=["https://www.googleapis.com/auth/devstorage.read_write"])


def check_regular_file(path: str, what: str) -> None:
  """Refuses a local input that is not a regular file: a pipe, FIFO or device has no size to
  cut into byte ranges (read as one, it would look empty, or block for ever)."""
  if is_remote(path):
    return
  mode = os.stat(path).st_mode
  if not stat.S_ISREG(mode):
    kind = ("a pipe or FIFO" if stat.S_ISFIFO(mode) else "a directory" if stat.S_ISDIR(mode)
            else "a device or socket")
    raise ValueError(f"{what} {path} is {kind}, not a regular file: bertline reads inputs in "
                     "parallel byte ranges, so write the stream to a file first (e.g. "
                     "`... > rows.txt`) and give that.")


def isdir(path: str) -> bool:
  return _gfile().isdir(path) if is_remote(path) else os.path.isdir(path)


def listdir(path: str) -> List[str]:
  """Names in a directory (no trailing "/" for remote sub-directories)."""
  if is_remote(path):
    return [name.rstrip("/") for name in _gfile().listdir(path)]
  return os.listdir(path)


def size(path: str) -> int:
  """A file's size in bytes (a metadata call: no contents are read)."""
  return _gfile().stat(path).length if is_remote(path) else os.path.getsize(path)


def makedirs(path: str) -> None:
  if is_remote(path):
    _gfile().makedirs(path)
  else:
    os.makedirs(path, exist_ok=True)


def glob(pattern: str) -> List[str]:
  if is_remote(pattern):
    return _gfile().glob(pattern)
  return _glob.glob(pattern)


def expand_inputs(patterns: List[str], flag: str, twice: str) -> List[str]:
  """The files that local paths, globs and gs:// patterns name, in a stable order.

  Args:
    patterns: what the user gave (`flag`'s values).
    flag: the flag that gave them, for the messages.
    twice: what reading one file twice would do, for the message that refuses it.
  """
  files: List[str] = []
  for pattern in patterns:
    if any(c in pattern for c in "*?["):
      matched = sorted(glob(pattern))
      if not matched:
        raise FileNotFoundError(f"{flag} {pattern}: no file matches")
      files += matched
    elif isdir(pattern):
      raise ValueError(f"{flag} {pattern} is a directory: give files or a glob, e.g. "
                       f"'{join(pattern, '*.txt')}'")
    elif not exists(pattern):
      raise FileNotFoundError(f"{flag} {pattern} not found")
    else:
      check_regular_file(pattern, flag)
      files.append(pattern)
  # One file named two ways (S.txt and ./S.txt, or through a link) is still one file.
  same = [f if is_remote(f) else os.path.realpath(f) for f in files]
  if len(set(same)) != len(same):
    repeated = next(f for i, f in enumerate(files) if same[i] in same[:i])
    raise ValueError(f"{flag} names {repeated} twice; {twice}")
  return files


def remove(path: str) -> None:
  if is_remote(path):
    _gfile().remove(path)
  else:
    os.remove(path)


def rmtree(path: str) -> None:
  """Removes a directory tree; nothing if it is not there."""
  if is_remote(path):
    if _gfile().exists(path):
      _gfile().rmtree(path)
  else:
    shutil.rmtree(path, ignore_errors=True)


def rename(src: str, dst: str) -> None:
  """Moves a file over `dst` (atomic locally; a copy and delete on object stores)."""
  if is_remote(src):
    _gfile().rename(src, dst, overwrite=True)
  else:
    os.makedirs(os.path.dirname(dst) or ".", exist_ok=True)
    os.replace(src, dst)


def read_bytes(path: str) -> bytes:
  if is_remote(path):
    with _gfile().GFile(path, "rb") as f:
      return f.read()
  with open(path, "rb") as f:
    return f.read()


def open_read(path: str):
  """A binary, seekable file object for reading (local or gs://)."""
  if is_remote(path):
    return _gfile().GFile(path, "rb")
  return open(path, "rb")


def read_text(path: str) -> str:
  return read_bytes(path).decode("utf-8")


def write_bytes_atomic(path: str, data: bytes) -> None:
  """Writes to a temporary sibling, then renames over `path`."""
  parent = os.path.dirname(path) if not is_remote(path) else posixpath.dirname(path)
  if parent:
    makedirs(parent)
  tmp = f"{path}.tmp-{uuid.uuid4().hex}"
  if is_remote(path):
    gf = _gfile()
    with gf.GFile(tmp, "wb") as f:
      f.write(data)
    gf.rename(tmp, path, overwrite=True)
    return
  try:
    with open(tmp, "wb") as f:
      f.write(data)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp, path)
  except BaseException:
    # A full disk, a directory in the way, an interrupt: the old file stays, and no
    # temporary sibling is left behind.
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


def write_text_atomic(path: str, text: str) -> None:
  write_bytes_atomic(path, text.encode("utf-8"))


def sha256_file(path: str) -> str:
  return hashlib.sha256(read_bytes(path)).hexdigest()


def _finite(value: Any) -> Any:
  """`value` with every non-finite float (NaN, +-Inf) replaced by None, recursively."""
  if isinstance(value, float):
    return value if math.isfinite(value) else None
  if isinstance(value, dict):
    return {k: _finite(v) for k, v in value.items()}
  if isinstance(value, (list, tuple)):
    return [_finite(v) for v in value]
  return value


def to_json(data: Any, indent: Any = 2) -> str:
  """Strict JSON (RFC 8259: no NaN or Infinity; those become null), keys sorted, newline-ended."""
  return json.dumps(_finite(data), indent=indent, sort_keys=True, allow_nan=False) + "\n"


def write_json_atomic(path: str, data: Any) -> None:
  """Every JSON file bertline writes goes through here: strict JSON, written atomically."""
  write_text_atomic(path, to_json(data))


@contextlib.contextmanager
def output_claim(directory: str, lock_name: str, refused: str):
  """A job's exclusive claim on its output `directory` (made if absent, locally) while it runs.

  On gs://, where there is no flock, the claim is an object created only if
  absent, with its owner and a renewed lease (bertline/gcs_claim.py). Other
  object stores take none: readers still read only the files a finished
  run's manifest lists, so two writers are never mixed there either.
  """
  if directory.startswith("gs://"):
    # Deferred: the Cloud Storage client costs every command 0.18 s to import; only a gs://
    # output needs it.
    from bertline import gcs_claim
    with gcs_claim.claim(directory, lock_name, refused):
      yield
    return
  if is_remote(directory):
    yield
    return
  os.makedirs(directory, exist_ok=True)
  with exclusive_claim(os.path.join(directory, lock_name), refused):
    yield


@contextlib.contextmanager
def exclusive_claim(lock_path: str, refused: str):
  """Holds an exclusive, non-blocking flock on the local file `lock_path` while the block runs.

  The kernel releases it when its owner exits, however it exits, so a claim
  is never left stale; while it is held, whatever an earlier owner left
  half-done is provably abandoned. When another process holds it,
  FileExistsError(`refused`, plus who holds it) is raised at once.
  """
  with open(lock_path, "a+", encoding="utf-8") as f:
    try:
      fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      f.seek(0)
      owner = f.read().strip() or "another process"
      raise FileExistsError(f"{refused} ({owner})") from None
    f.seek(0)
    f.truncate()
    f.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
    f.flush()
    try:
      yield
    finally:
      fcntl.flock(f.fileno(), fcntl.LOCK_UN)
