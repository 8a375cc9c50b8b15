"""`bertline push`: copy a blessed exported model to a registry, versioned and atomic.

    bertline push --model export/1700000000 --to gs://bucket/models/sentiment
    bertline push --model export/1700000000 --to /srv/models/sentiment

The model lands at <to>/<version>/, TF Serving's layout. Guarantees:

* Only a blessed model is pushed (its blessing.json: --blessing, or the one
  `bertline export` stored in <model>/assets.extra/); --force pushes anyway and
  says so in the push record.
* A pushed version is never modified: a destination holding the completion
  marker is a clash, reported as an error.
* A reader never sees half a model: every file is uploaded and its checksum
  verified (GCS's md5 and crc32c, sha256 locally) before the marker
  (`schema.PUSH_COMPLETE_MARKER`, which holds the push record) is written last.
  saved_model.pb is uploaded after all other files, so even TF Serving, which
  polls for version directories and knows nothing of the marker, only finds a
  loadable graph once its variables and assets are all there. Locally the
  version is staged in a hidden sibling and renamed into place.
* An interrupted push (files but no marker) is replaced by the next run.
* On Cloud Storage every object is created only if absent
  (if_generation_match=0), the marker last the same way: of two pushes racing
  to one version, the loser meets a refused create, deletes exactly the
  objects it created (by generation) and fails; nothing mixes two models.
  Transient errors (429, 5xx, dropped connections, corrupted transfers) are
  retried by google-cloud-storage's own policy, which those preconditions make
  safe; every upload is checked with crc32c.
* Serving is checked first (TFX's InfraValidator, exporter/serving_check.py):
  the version is loaded in a separate clean process that cannot import
  bertline and answers its own TF Serving warmup requests; a version that
  fails is not pushed, and the reason is written into its blessing
  (assets.extra/blessing.json). --skip-serving-check skips it (recorded).
* With --vertex-model (a gs:// target), the pushed version is registered as a
  version of that Vertex AI model (exporter/vertex_registry.py). If only the
  registration fails, re-running the same push registers it without copying
  again: an identical pushed version (same files, same checksums) is
  accepted in that case only.
* Credentials are Application Default Credentials (`gcloud auth
  application-default login`, a service account on GKE/Vertex): nothing secret
  is read from a flag or written to a log. STORAGE_EMULATOR_HOST is honoured.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
import os
import shutil
import stat
import time
import uuid
from typing import Dict, List, Optional, Tuple

import google_crc32c
from google.api_core import exceptions as gexc
from google.cloud import storage
from google.cloud.storage.exceptions import DataCorruption
from google.cloud.storage.retry import DEFAULT_RETRY
from tqdm import tqdm

from bertline import errors, fileio, flags, schema
from bertline.evaluator import blessing as blessing_lib
from bertline.evaluator import scoring
from bertline.export_dir import ExportDir
from bertline.exporter import config, serving_check, vertex_registry
from bertline.exporter.config import PushConfig

log = logging.getLogger("bertline.push")


# Where `bertline export` keeps the blessing inside a version directory
# (TF Serving's place for files that are not part of the SavedModel).
EXPORT_BLESSING = os.path.join(schema.ASSETS_EXTRA, schema.BLESSING_FILE)
# google-cloud-storage's retry: exponential backoff from 1 s up to 30 s, for at most 2 minutes.
INITIAL_BACKOFF_S = 1.0
MAX_BACKOFF_S = 30.0
GCS_RETRY_TIMEOUT_S = 120.0


class ChecksumMismatch(IOError):
  """An uploaded object's checksum differs from the local file's."""


# The flags live with the config (exporter/config.py): `--help` answers without TensorFlow.
build_parser = config.push_parser


# --- source -------------------------------------------------------------------

def _source_files(model: str) -> List[str]:
  """Relative paths of every file of the export, saved_model.pb last.

  Only regular files and directories inside the export are pushed: a symlink
  (os.walk would skip a linked directory silently, and follow a linked file
  wherever it points) or a device, socket or FIFO is refused, naming it.
  """
  files = []
  for root, dirs, names in os.walk(model):
    for name in dirs + names:
      path = os.path.join(root, name)
      mode = os.lstat(path).st_mode
      if stat.S_ISLNK(mode):
        raise ValueError(f"{path} is a symbolic link (to {os.readlink(path)}): an export holds "
                         "only regular files and directories. Re-run `bertline export`, or copy "
                         "the export with links resolved (cp -rL).")
      if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise ValueError(f"{path} is not a regular file or directory; an export holds only "
                         "those. Re-run `bertline export`.")
    for name in names:
      files.append(os.path.relpath(os.path.join(root, name), model).replace(os.sep, "/"))
  files.sort(key=lambda p: (p in (schema.SAVED_MODEL_PB, schema.TFLITE_FILE), p))
  return files


def _file_digests(path: str) -> Dict[str, str]:
  """sha256 (hex), md5 and crc32c (base64, as GCS reports them) of a local file."""
  sha, md5, crc = hashlib.sha256(), hashlib.md5(), google_crc32c.Checksum()
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(1 << 20), b""):
      sha.update(chunk)
      md5.update(chunk)
      crc.update(chunk)
  return {"sha256": sha.hexdigest(), "md5": base64.b64encode(md5.digest()).decode(),
          "crc32c": base64.b64encode(crc.digest()).decode()}


def _check_source(model: str) -> str:
  model = model.rstrip("/")
  if fileio.is_remote(model):
    raise ValueError(f"--model {model}: push reads a local export; copy it here first "
                     "(or run `bertline export` on this machine).")
  if not os.path.isdir(model):
    raise FileNotFoundError(f"--model {model} is not a directory; pass an exported version "
                            "directory E/<version> written by `bertline export`.")
  version = os.path.basename(model)
  if not schema.is_version(version):
    raise ValueError(f"--model {model}: the last path component {version!r} is not a numeric "
                     "version; pass E/<version> (TF Serving loads numeric version directories).")
  if not scoring.is_export(model):
    raise FileNotFoundError(f"--model {model} has no {schema.SAVED_MODEL_PB} (nor "
                            f"{schema.TFLITE_FILE}): "
                            "not an export (or its export did not finish). Re-run "
                            "`bertline export`.")
  return version


def _blessing_status(model: str, blessing_path: Optional[str], force: bool) -> Dict:
  path = blessing_path or ExportDir(model).blessing_file
  if not fileio.exists(path):
    if force:
      log.warning("No blessing (%s); pushing because of --force.", path)
      return {"path": None, "blessed": False, "reasons": ["no blessing found"]}
    raise FileNotFoundError(
        f"No blessing for {model}: {path} not found. Run `bertline evaluate` and pass its "
        "blessing.json with --blessing (or export after evaluating), or push anyway with --force.")
  blessing = blessing_lib.read(path)
  # The evaluation's verdict: a serving check recorded by an earlier push is not part of it.
  evaluation = {**blessing, "checks": [c for c in blessing.get("checks", [])
                                       if c.get("metric") != serving_check.CHECK_METRIC]}
  evaluation["blessed"] = all(c.get("passed") for c in evaluation["checks"]) if evaluation[
      "checks"] else blessing["blessed"]
  blessing = evaluation
  if not blessing["blessed"] and not force:
    reasons = "; ".join(r for r in blessing.get("reasons", []) if r.startswith("FAIL")) or "?"
    raise ValueError(f"{model} is not blessed ({path}: {reasons}). Not pushed; use --force to "
                     "push it anyway (recorded in the push record).")
  if not blessing["blessed"]:
    log.warning("Pushing an unblessed model because of --force.")
  return {"path": path, "blessed": blessing["blessed"], "reasons": blessing.get("reasons", []),
          "record": blessing}


def _check_serving(model: str, status: Dict, enabled: bool, timeout_s: float) -> Dict:
  """Runs the serving check; records it in the export's blessing; raises if it failed."""
  if not enabled:
    log.warning("Serving check skipped (--skip-serving-check): %s was not loaded in a clean "
                "process before the push.", model)
    return {"status": "skipped"}
  log.info("Serving check: replaying %s's TF Serving warmup requests in a clean process...",
           model)
  result = serving_check.check(model, timeout_s)
  # Kept in the export's blessing when there is one, and always when it failed (so a
  # later push without --force is refused too); otherwise in the push record only.
  path = (serving_check.record(model, result, status.get("record"))
          if status.get("record") or not result.passed else "")
  if not result.passed:
    raise serving_check.ServingCheckFailed(
        f"{model} was not pushed: it failed the serving check ({result.reason}); recorded in "
        f"{path}. Fix the export (re-run `bertline export`) and push again.")
  log.info("Serving check passed in %.1f s: %s", result.seconds, result.reason)
  return {**result.to_record(), "seconds": result.seconds}


# --- destinations ---------------------------------------------------------------

def _split_gcs(url: str) -> Tuple[str, str]:
  rest = url[len("gs://"):].strip("/")
  bucket, _, prefix = rest.partition("/")
  if not bucket:
    raise ValueError(f"--to {url}: no bucket; expected gs://BUCKET/path")
  return bucket, prefix


def _gcs_retry():
  """google-cloud-storage's own retry policy (429, 5xx, dropped connections), bounded.

  Safe for every call below: uploads carry if_generation_match=0 and deletes
  the generation they mean, so a retried request can never replace or remove
  another writer's object.
  """
  return DEFAULT_RETRY.with_delay(initial=INITIAL_BACKOFF_S, maximum=MAX_BACKOFF_S,
                                  multiplier=2.0).with_timeout(GCS_RETRY_TIMEOUT_S)


def _remote_failure(what: str, error: Exception) -> "errors.RemoteError":
  return errors.RemoteError(
      f"{what} failed ({type(error).__name__}: {str(error).splitlines()[0][:300]}) after "
      "retries. Check the network and the bucket, then re-run push (an unfinished push is "
      "replaced).")


def _push_gcs(model: str, files: List[str], digests: Dict[str, Dict[str, str]], to: str,
              version: str, record: Dict, accept_identical: bool = False) -> str:
  """Uploads every file with if_generation_match=0 (create only), the marker last the same way.

  Of two pushes racing to one version, every object can be created by one of
  them only: the loser meets a PreconditionFailed, deletes exactly the
  objects it created (by generation) and fails; before writing the marker a
  push checks that the version holds exactly its own objects.
  """
  bucket_name, base = _split_gcs(to)
  prefix = "/".join(p for p in (base, version) if p) + "/"
  dest = f"gs://{bucket_name}/{prefix.rstrip('/')}"
  retry = _gcs_retry()
  # Application Default Credentials (or STORAGE_EMULATOR_HOST).
  client = storage.Client()
  bucket = client.bucket(bucket_name)

  def listing() -> Dict[str, int]:
    return {b.name: b.generation
            for b in client.list_blobs(bucket_name, prefix=prefix, retry=retry)}

  existing = _first_listing(listing, to, bucket_name, dest)
  marker = prefix + schema.PUSH_COMPLETE_MARKER
  if marker in existing and accept_identical and _same_files(bucket, marker, record, retry):
    log.info("%s already holds this very version (same files and checksums): not copied again.",
             dest)
    return dest
  if marker in existing:
    raise FileExistsError(f"{dest} was already pushed (it has {schema.PUSH_COMPLETE_MARKER}); a "
                          "pushed version is never modified. Export a new version instead.")
  created: Dict[str, int] = {}
  try:
    if existing:
      log.warning("%s holds %d object(s) of an unfinished push; replacing them.", dest,
                  len(existing))
      for name, generation in existing.items():
        _delete_generation(bucket, name, generation, retry)
    _upload_files(bucket, model, files, digests, prefix, retry, created, dest)
    if listing() != created:
      raise FileExistsError(f"{dest} changed during this push (another push of version "
                            f"{version}?); this push's own objects were removed.")
    # Written last and only if absent: of two racing pushes, one completes the version.
    blob = bucket.blob(marker)
    blob.upload_from_string(fileio.to_json(record), content_type="application/json",
                            if_generation_match=0, retry=retry)
  except gexc.PreconditionFailed as e:
    _delete_own(bucket, created, retry)
    raise FileExistsError(f"{dest}: another push of version {version} wrote an object first "
                          "(a create-only upload was refused); this push's own objects were "
                          "removed and the other's left alone.") from e
  except Exception as e:  # not BaseException: a killed push leaves its objects for the next
    _delete_own(bucket, created, retry)
    if isinstance(e, (gexc.GoogleAPICallError, gexc.RetryError, DataCorruption, ChecksumMismatch,
                      ConnectionError)):
      raise _remote_failure(f"pushing {model} to {dest}", e) from e
    raise  # FileExistsError (the version changed under us), local I/O errors: as they are
  return dest


def _first_listing(listing, to: str, bucket_name: str, dest: str) -> Dict[str, int]:
  """The version's objects before the push, a missing or forbidden bucket said as such."""
  try:
    return listing()
  except gexc.NotFound as e:
    raise FileNotFoundError(f"--to {to}: bucket gs://{bucket_name} does not exist (or is not "
                            "visible to these credentials). Create it or fix --to.") from e
  except gexc.Forbidden as e:
    raise ValueError(f"--to {to}: access to gs://{bucket_name} denied for the Application "
                     "Default Credentials; grant them storage.objects.create/list.") from e
  except (gexc.GoogleAPICallError, gexc.RetryError, ConnectionError, OSError) as e:
    raise _remote_failure(f"listing {dest}", e) from e


def _upload_files(bucket, model: str, files: List[str], digests: Dict[str, Dict[str, str]],
                  prefix: str, retry, created: Dict[str, int], dest: str) -> None:
  """Creates each file's object (only if absent), checked by crc32c; `created` grows as it goes,
  so a failure deletes exactly what this push made."""
  for rel in tqdm(files, desc=f"push {dest}", unit="file"):
    blob = bucket.blob(prefix + rel)
    # checksum="crc32c": the library checks what arrived against the file.
    blob.upload_from_filename(os.path.join(model, rel), checksum="crc32c",
                              if_generation_match=0, retry=retry)
    created[blob.name] = blob.generation
    if blob.crc32c is not None and blob.crc32c != digests[rel]["crc32c"]:
      raise ChecksumMismatch(f"gs://{bucket.name}/{blob.name}: crc32c {blob.crc32c} != the "
                             f"exported file's {digests[rel]['crc32c']} (it changed while "
                             "being pushed?)")


def _same_files(bucket, marker: str, record: Dict, retry) -> bool:
  """Whether a pushed version's record lists exactly this push's files and checksums."""
  try:
    pushed = json.loads(bucket.blob(marker).download_as_bytes(retry=retry))
  except (ValueError, OSError):
    return False
  return {rel: f.get("sha256") for rel, f in (pushed.get("files") or {}).items()} == {
      rel: f["sha256"] for rel, f in record["files"].items()}


def _delete_generation(bucket, name: str, generation: int, retry) -> None:
  """Deletes exactly this generation of an object (not one written since)."""
  try:
    bucket.blob(name).delete(if_generation_match=generation, retry=retry)
  except (gexc.NotFound, gexc.PreconditionFailed):
    pass


def _delete_own(bucket, created: Dict[str, int], retry) -> None:
  for name, generation in created.items():
    try:
      _delete_generation(bucket, name, generation, retry)
    except Exception as e:  # noqa: BLE001  Best effort: the next push replaces leftovers.
      log.warning("Could not remove gs://%s/%s: %s", bucket.name, name, e)


def _push_local(model: str, files: List[str], digests: Dict[str, Dict[str, str]], to: str,
                version: str, record: Dict) -> str:
  """Stages the version in a hidden directory, then renames it into place (one atomic step).

  An exclusive claim on the version (flock on `.<version>.lock`, released by
  the kernel if its owner dies) serialises pushes of the same version: a
  second one is refused while the first runs, and a staging directory found
  while holding the claim can only be an unfinished push's, whose owner is
  gone. On any failure (a full disk included) this push's own staging
  directory is removed.
  """
  base = to[len("file://"):] if to.startswith("file://") else to
  dest = os.path.join(base, version)
  _check_no_version(dest)
  if os.path.exists(base) and not os.path.isdir(base):
    raise NotADirectoryError(f"--to {to} is a file, not a directory: push to a directory "
                             "(it is created if missing) or to gs://bucket/path.")
  try:
    os.makedirs(base, exist_ok=True)
  except (FileExistsError, NotADirectoryError) as e:
    raise NotADirectoryError(f"--to {to}: {e.filename or base} is a file, so the registry "
                             "directory cannot be created under it; choose another --to.") from e
  with fileio.exclusive_claim(os.path.join(base, f".{version}.lock"),
                             f"another push of version {version} to {to} is in progress; "
                             "nothing was written. Wait for it to finish"):
    _check_no_version(dest)  # pushed by another process before we got the claim
    # Hidden and non-numeric: TF Serving ignores it; stale ones are unfinished pushes.
    stage_prefix = f".{version}.partial-"
    for stale in os.listdir(base):
      if stale.startswith(stage_prefix):
        log.warning("Removing %s, left by an unfinished push (its owner is gone).",
                    os.path.join(base, stale))
        shutil.rmtree(os.path.join(base, stale), ignore_errors=True)
    stage = os.path.join(base, stage_prefix + uuid.uuid4().hex)
    try:
      for rel in tqdm(files, desc=f"push {dest}", unit="file"):
        target = os.path.join(stage, *rel.split("/"))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        shutil.copyfile(os.path.join(model, rel), target)
        got = fileio.sha256_file(target)
        if got != digests[rel]["sha256"]:
          raise IOError(f"{target}: sha256 {got} != source {digests[rel]['sha256']} after copy; "
                        "the disk may be failing. Nothing was pushed; re-run push.")
      with open(os.path.join(stage, schema.PUSH_COMPLETE_MARKER), "w", encoding="utf-8") as f:
        f.write(fileio.to_json(record))
        f.flush()
        os.fsync(f.fileno())
      os.rename(stage, dest)
    finally:
      if os.path.exists(stage):
        shutil.rmtree(stage, ignore_errors=True)
  return dest


def _check_no_version(dest: str) -> None:
  if not os.path.exists(dest):
    return
  if os.path.exists(os.path.join(dest, schema.PUSH_COMPLETE_MARKER)):
    raise FileExistsError(f"{dest} was already pushed (it has {schema.PUSH_COMPLETE_MARKER}); a "
                          "pushed version is never modified. Export a new version instead.")
  raise FileExistsError(f"{dest} exists but was not written by `bertline push` (no "
                        f"{schema.PUSH_COMPLETE_MARKER}); move it away or choose another --to.")


def read_push_record(dest: str) -> Dict:
  """The push record of a pushed version (its completion marker); error if unfinished."""
  path = fileio.join(dest, schema.PUSH_COMPLETE_MARKER)
  if not fileio.exists(path):
    raise FileNotFoundError(f"{dest} has no {schema.PUSH_COMPLETE_MARKER}: not a completed push.")
  return json.loads(fileio.read_text(path))


def push(model: str, to: str, force: bool = False, blessing: Optional[str] = None,
         check_serving: bool = True, serving_timeout_s: float = serving_check.DEFAULT_TIMEOUT_S,
         vertex: Optional[vertex_registry.VertexModel] = None,
         report: Optional[Dict] = None) -> str:
  """Pushes exported version directory `model` to `<to>/<version>`; returns that path.

  Args:
    model: str. Local E/<version> directory written by `bertline export`.
    to: str. gs://bucket/prefix, file:///path or a local path.
    force: bool. Push without a positive blessing (recorded).
    blessing: str or None. blessing.json path (default <model>/assets.extra/blessing.json).
    check_serving: bool. Replay the version's warmup requests in a clean process
      first (serving_check); a version that fails is not pushed.
    serving_timeout_s: float. How long that process may take.
    vertex: VertexModel or None. Also register the pushed version in the Vertex
      AI Model Registry (needs a gs:// target).
    report: dict or None. Filled with the push record (and `registered_as`, the
      Vertex AI model version, when registered).
  Raises:
    FileExistsError: the version was already pushed (nothing is modified).
    ValueError / FileNotFoundError: unblessed model, failed serving check, bad
      paths, unreachable bucket.
  """
  model = model.rstrip("/")
  version = _check_source(model)
  if vertex is not None:
    _check_registrable(model, to)
  fileio.check_credentials(to)
  status = _blessing_status(model, blessing, force)
  files = _source_files(model)  # symlinks are refused before the (slower) serving check
  check = _check_serving(model, status, check_serving, serving_timeout_s)
  files = _source_files(model)  # again: the check may have written the export's blessing
  digests = {rel: _file_digests(os.path.join(model, rel)) for rel in files}
  record = _push_record(model, version, force, status, check, files, digests)
  if to.startswith("gs://"):
    dest = _push_gcs(model, files, digests, to, version, record,
                     accept_identical=vertex is not None)
  elif fileio.is_remote(to) and not to.startswith("file://"):
    raise ValueError(f"--to {to}: unsupported scheme; use gs://bucket/path, file:///path or a path.")
  else:
    dest = _push_local(model, files, digests, to, version, record)
  log.info("Pushed %s to %s (%d files%s).", model, dest, len(files), ", FORCED" if force else "")
  if vertex is not None:
    metadata = ExportDir(model).metadata()
    record["registered_as"] = vertex_registry.register_or_explain(
        dest, vertex, metadata, record,
        rerun=f"`bertline push --model {model} --to {to} --vertex-model {vertex.model_id} ...`")
  if report is not None:
    report.update(record)
  return dest


def _check_registrable(model: str, to: str) -> None:
  """What Vertex AI needs of a version, said before anything is copied."""
  if ExportDir(model).is_tflite():
    raise ValueError(f"--vertex-model with {model}: a quantized export ({schema.TFLITE_FILE}) "
                     "is not a SavedModel, and Vertex AI's TensorFlow serving images load "
                     "SavedModels only. Push it without --vertex-model, or register a float32 "
                     "export (`bertline export --quantize none`).")
  if not to.startswith("gs://"):
    raise ValueError(f"--vertex-model needs --to gs://BUCKET/path, not {to!r}: Vertex AI "
                     "serves models from Cloud Storage.")
  vertex_registry.sdk()  # an absent SDK is said before anything is done


def _push_record(model: str, version: str, force: bool, status: Dict, check: Dict,
                 files: List[str], digests: Dict[str, Dict[str, str]]) -> Dict:
  """The completion marker's content: what was pushed, why it was allowed, every checksum."""
  return {
      "source": os.path.abspath(model),
      "version": int(version),
      "forced": bool(force),
      "blessed": status["blessed"],
      "blessing": status["path"],
      "blessing_reasons": status["reasons"],
      "serving_check": check,
      "files": {rel: {"size": os.path.getsize(os.path.join(model, rel)), **digests[rel]}
                for rel in files},
      "pushed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
  }


def run(config: PushConfig, report: Optional[Dict] = None) -> str:
  """`bertline push` of `config` (exporter/config.py); returns <to>/<version>."""
  return push(config.model, config.to, force=config.force, blessing=config.blessing or None,
              check_serving=config.check_serving, serving_timeout_s=config.serving_timeout,
              vertex=config.vertex(), report=report)


def main(argv: List[str]) -> int:
  parser = build_parser()
  config = flags.config_from_flags(PushConfig, parser.parse_args(argv), parser)
  if not config.vertex_model and (config.vertex_project or config.vertex_region):
    # A command line's slip (a run config may keep them while registration is off).
    raise ValueError("--project and --region go with --vertex-model (Vertex AI Model Registry)")
  record: Dict = {}
  dest = run(config, report=record)
  print(f"push: {dest}")
  if record.get("registered_as"):
    print(f"push: registered in Vertex AI as {record['registered_as']}")
  return 0
