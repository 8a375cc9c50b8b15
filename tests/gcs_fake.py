"""A small in-memory Cloud Storage bucket that enforces generation preconditions as Cloud Storage
documents them (create-only with if_generation_match=0, a write or delete of one generation).

gcp-storage-emulator ignores them, so the races that preconditions decide are played here.
"""

from google.api_core import exceptions as gexc


class _Blob:
  def __init__(self, bucket, name):
    self.bucket, self.name = bucket, name
    self.generation = self.crc32c = None

  def _create(self, data: bytes, if_generation_match):
    self.bucket.before_write(self.name)
    if if_generation_match == 0 and self.name in self.bucket.objects:
      raise gexc.PreconditionFailed(f"{self.name} exists")
    if if_generation_match and self.bucket.objects.get(self.name, (None,))[0] != if_generation_match:
      raise gexc.PreconditionFailed(f"{self.name} is not generation {if_generation_match}")
    self.bucket.counter += 1
    # crc32c stays None: the real library checks it; these tests are about preconditions.
    self.generation = self.bucket.counter
    self.bucket.objects[self.name] = (self.generation, data)

  def upload_from_filename(self, path, checksum=None, if_generation_match=None, retry=None):
    with open(path, "rb") as f:
      self._create(f.read(), if_generation_match)

  def upload_from_string(self, body, content_type=None, if_generation_match=None, retry=None):
    self._create(body.encode(), if_generation_match)

  def reload(self, retry=None):
    if self.name not in self.bucket.objects:
      raise gexc.NotFound(self.name)
    self.generation = self.bucket.objects[self.name][0]

  def download_as_bytes(self, if_generation_match=None, retry=None):
    if self.name not in self.bucket.objects:
      raise gexc.NotFound(self.name)
    generation, data = self.bucket.objects[self.name]
    if if_generation_match is not None and generation != if_generation_match:
      raise gexc.PreconditionFailed(f"{self.name} is another generation")
    return data

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

  def get_blob(self, name):
    return _Blob(self, name) if name in self.objects else None

  def before_write(self, name):
    hook = self.hooks.pop(name, None)
    if hook:
      hook()


class _Listed:
  def __init__(self, name, generation):
    self.name, self.generation = name, generation


class _Client:
  bucket_ = None

  def bucket(self, name):
    return self.bucket_

  def list_blobs(self, bucket_name, prefix="", retry=None):
    return [_Listed(n, g) for n, (g, _) in sorted(self.bucket_.objects.items())
            if n.startswith(prefix)]


def install(monkeypatch, storage) -> "_Bucket":
  """Replaces storage.Client with one over a fresh bucket (every bucket name is that bucket)."""
  bucket = _Bucket()
  monkeypatch.setattr(_Client, "bucket_", bucket)
  monkeypatch.setattr(storage, "Client", _Client)
  return bucket
