"""A Vertex AI Model Registry on loopback: the REST calls push makes, checked against the API docs.

Serves what google-cloud-aiplatform's REST transport sends for
`Model.upload` and `Model(...)` lookups, and an OAuth token endpoint for the
credentials file the tests point GOOGLE_APPLICATION_CREDENTIALS at:

* Authentication, as Google's APIs take a service account key file's: every
  request carries `Authorization: Bearer` with either an access token from
  POST /token (the signed-JWT grant of RFC 7523) or a self-signed JWT scoped
  to cloud-platform (what google-auth sends the GAPIC clients directly); each
  JWT's RS256 signature must verify with the account's public key.
* POST /v1/projects/{p}/locations/{l}/models:upload (projects.locations.models.upload):
  body {model, parentModel?, modelId?}; returns a long-running Operation,
  not yet done, so the SDK polls it.
* GET  /{v1|ui}/projects/{p}/locations/{l}/models/{m}/operations/{id}: done, with
  an UploadModelResponse {model, modelVersionId}.
* GET  /v1/projects/{p}/locations/{l}/models/{m}[@{version id or alias}]: the Model.

What is checked is what the reference for projects.locations.models.upload
and its Model resource says (cloud.google.com/vertex-ai/docs/reference/rest):
displayName required (at most 128 characters); containerSpec.imageUri
required; artifactUri a Cloud Storage directory; modelId 1-63 of [a-z0-9_-]
not starting with a digit or "-", only for a new model; parentModel an
existing model's resource name, in the request's location; labels at most
64, keys and values at most 63 characters of lowercase letters, digits, "_"
and "-", keys starting with a letter; versionAliases matching
[a-z][a-zA-Z0-9-]{0,126}[a-z0-9] and unique within the model; exactly one
version holding the "default" alias. A violation is answered 400
INVALID_ARGUMENT, as the service does, and recorded in `errors`.
"""

from __future__ import annotations

import http.server
import json
import re
import threading
import uuid
from typing import Any, Dict, List, Optional

_MODEL_ID = re.compile(r"^[a-z_][a-z0-9_-]{0,62}$")
_LABEL_KEY = re.compile(r"^[a-z][a-z0-9_-]{0,62}$")
_LABEL_VALUE = re.compile(r"^[a-z0-9_-]{0,63}$")
_ALIAS = re.compile(r"^[a-z][a-zA-Z0-9-]{0,126}[a-z0-9]$")
_MODEL_PATH = re.compile(r"^/v1/projects/([^/]+)/locations/([^/]+)/models/([^/@]+)(?:@([^/]+))?$")
_UPLOAD_PATH = re.compile(r"^/v1/projects/([^/]+)/locations/([^/]+)/models:upload$")
_OPERATION_PATH = re.compile(r"^/(?:v1|ui)/(projects/[^/]+/locations/[^/]+/models/[^/]+/"
                             r"operations/[^/]+)$")


class VertexModelRegistry:
  """The server's state: models with their versions, operations, and every request seen."""

  def __init__(self):
    self.token = "ya29.test-" + uuid.uuid4().hex
    self.models: Dict[str, Dict[str, Any]] = {}  # resource name -> {"versions": [...]}
    self.operations: Dict[str, Dict[str, Any]] = {}
    self.requests: List[Dict[str, Any]] = []
    self.errors: List[str] = []
    self.fail_uploads = 0  # answer this many uploads with 500 first
    self.lock = threading.Lock()
    self.client_email = "push@bertline-test.iam.gserviceaccount.com"
    self.public_key = None
    self.self_signed = 0  # requests authenticated by a self-signed JWT

  # --- validation of an upload, per the API reference ----------------------------
  def validate_upload(self, project: str, location: str, body: Dict[str, Any]) -> Optional[str]:
    unknown = set(body) - {"model", "parentModel", "modelId", "serviceAccount"}
    if unknown:
      return f"unknown fields in UploadModelRequest: {sorted(unknown)}"
    model = body.get("model") or {}
    name = model.get("displayName", "")
    if not name or len(name) > 128:
      return "model.displayName is required (1-128 characters)"
    if not (model.get("containerSpec") or {}).get("imageUri"):
      return "model.containerSpec.imageUri is required"
    if not str(model.get("artifactUri", "")).startswith("gs://"):
      return f"model.artifactUri must be a Cloud Storage directory, got {model.get('artifactUri')!r}"
    labels = model.get("labels") or {}
    if len(labels) > 64:
      return "at most 64 labels"
    for key, value in labels.items():
      if not _LABEL_KEY.match(key) or not _LABEL_VALUE.match(value):
        return f"invalid label {key!r}: {value!r}"
    aliases = model.get("versionAliases") or []
    for alias in aliases:
      if alias != "default" and not _ALIAS.match(alias):
        return f"invalid version alias {alias!r}"
    parent_model, model_id = body.get("parentModel"), body.get("modelId")
    location_path = f"projects/{project}/locations/{location}"
    if parent_model:
      if model_id:
        return "modelId is for a new model; a new version names parentModel only"
      if not parent_model.startswith(location_path + "/models/"):
        return f"parentModel {parent_model!r} is not in {location_path}"
      if parent_model not in self.models:
        return f"NOT_FOUND parentModel {parent_model}"
      taken = {a for v in self.models[parent_model]["versions"] for a in v["versionAliases"]}
      clash = (set(aliases) - {"default"}) & taken
      if clash:
        return f"version aliases {sorted(clash)} already used in {parent_model}"
    else:
      if model_id is not None and not _MODEL_ID.match(model_id):
        return f"invalid modelId {model_id!r}"
      if model_id and f"{location_path}/models/{model_id}" in self.models:
        return f"ALREADY_EXISTS {location_path}/models/{model_id}"
    return None

  def upload(self, project: str, location: str, body: Dict[str, Any]) -> Dict[str, Any]:
    location_path = f"projects/{project}/locations/{location}"
    model = dict(body["model"])
    parent = body.get("parentModel") or f"{location_path}/models/{body.get('modelId') or uuid.uuid4().int % 10**12}"
    entry = self.models.setdefault(parent, {"versions": []})
    version_id = str(len(entry["versions"]) + 1)
    aliases = list(model.get("versionAliases") or [])
    if not entry["versions"] and "default" not in aliases:
      aliases.append("default")  # the first version is the default one
    if "default" in aliases:
      for v in entry["versions"]:
        v["versionAliases"] = [a for a in v["versionAliases"] if a != "default"]
    model.update(name=parent, versionId=version_id, versionAliases=aliases)
    entry["versions"].append(model)
    op = f"{parent}/operations/{uuid.uuid4().int % 10**12}"
    self.operations[op] = {"name": op, "done": True, "response": {
        "@type": "type.googleapis.com/google.cloud.aiplatform.v1.UploadModelResponse",
        "model": parent, "modelVersionId": version_id}}
    return {"name": op, "done": False, "metadata": {
        "@type": "type.googleapis.com/google.cloud.aiplatform.v1.UploadModelOperationMetadata",
        "genericMetadata": {}}}

  def get_model(self, name: str, version: Optional[str]) -> Optional[Dict[str, Any]]:
    entry = self.models.get(name)
    if not entry:
      return None
    versions = entry["versions"]
    if version is None:
      version = "default"
    for v in versions:
      if v["versionId"] == version or version in v["versionAliases"]:
        return v
    return None

  def verify_jwt(self, token: str) -> Any:
    """The claims of a JWT signed (RS256) by the service account's key, or an error string."""
    import base64
    import time

    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import padding

    def b64(part: str) -> bytes:
      return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))

    try:
      header, claims, signature = token.split(".")
      if json.loads(b64(header)).get("alg") != "RS256":
        return "not an RS256 JWT"
      self.public_key.verify(b64(signature), f"{header}.{claims}".encode(), padding.PKCS1v15(),
                             hashes.SHA256())
      claims = json.loads(b64(claims))
    except Exception as e:  # noqa: BLE001
      return f"the JWT does not verify: {e!r}"
    if claims.get("iss") != self.client_email:
      return f"JWT issued by {claims.get('iss')!r}"
    if not claims.get("exp", 0) > time.time():
      return "JWT expired"
    return claims

  def check_grant(self, body: Dict[str, str], token_uri: str) -> Optional[str]:
    """A JWT-bearer grant signed by the service account's key, for this token endpoint."""
    if body.get("grant_type") != "urn:ietf:params:oauth:grant-type:jwt-bearer":
      return f"unsupported grant_type {body.get('grant_type')!r}"
    claims = self.verify_jwt(body.get("assertion", ""))
    if isinstance(claims, str):
      return claims
    return None if claims.get("aud") == token_uri else f"assertion for {claims.get('aud')!r}"

  def check_bearer(self, header: str) -> Optional[str]:
    token = header[len("Bearer "):] if header.startswith("Bearer ") else ""
    if token and token == self.token:
      return None
    claims = self.verify_jwt(token)
    if isinstance(claims, str):
      return f"unauthenticated: {claims}"
    if "https://www.googleapis.com/auth/cloud-platform" not in str(claims.get("scope", "")):
      return f"JWT not scoped to cloud-platform: {claims.get('scope')!r}"
    self.self_signed += 1
    return None

  def default_versions(self, name: str) -> List[str]:
    return [v["versionId"] for v in self.models[name]["versions"] if "default" in v["versionAliases"]]


def server_url(handler) -> str:
  host, port = handler.server.server_address[:2]
  return f"http://{host}:{port}"


def _handler(registry: VertexModelRegistry):

  class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # quiet
      pass

    def _send(self, code: int, body: Dict[str, Any]) -> None:
      data = json.dumps(body).encode()
      self.send_response(code)
      self.send_header("Content-Type", "application/json")
      self.send_header("Content-Length", str(len(data)))
      self.end_headers()
      self.wfile.write(data)

    def _error(self, code: int, status: str, message: str) -> None:
      registry.errors.append(message)
      self._send(code, {"error": {"code": code, "status": status, "message": message}})

    def _body(self) -> Any:
      length = int(self.headers.get("Content-Length") or 0)
      raw = self.rfile.read(length) if length else b""
      if self.headers.get("Content-Type", "").startswith("application/x-www-form-urlencoded"):
        from urllib.parse import parse_qs
        return {k: v[0] for k, v in parse_qs(raw.decode()).items()}
      return json.loads(raw or b"{}")

    def _authorized(self) -> bool:
      problem = registry.check_bearer(self.headers.get("Authorization") or "")
      if problem:
        self._error(401, "UNAUTHENTICATED", problem)
        return False
      return True

    def do_POST(self):  # noqa: N802
      body = self._body()
      with registry.lock:
        registry.requests.append({"method": "POST", "path": self.path, "body": body})
        if self.path == "/token":
          problem = registry.check_grant(body, f"{server_url(self)}/token")
          if problem:
            return self._error(400, "INVALID_ARGUMENT", problem)
          return self._send(200, {"access_token": registry.token, "expires_in": 3600,
                                  "token_type": "Bearer"})
        if not self._authorized():
          return None
        match = _UPLOAD_PATH.match(self.path.split("?")[0])
        if not match:
          return self._error(404, "NOT_FOUND", f"no such method {self.path}")
        if registry.fail_uploads:
          registry.fail_uploads -= 1
          return self._error(500, "INTERNAL", "the registry is having a bad day")
        problem = registry.validate_upload(match.group(1), match.group(2), body)
        if problem:
          if problem.startswith("ALREADY_EXISTS"):
            return self._error(409, "ALREADY_EXISTS", problem)
          if problem.startswith("NOT_FOUND"):
            return self._error(404, "NOT_FOUND", problem)
          return self._error(400, "INVALID_ARGUMENT", problem)
        return self._send(200, registry.upload(match.group(1), match.group(2), body))

    def do_GET(self):  # noqa: N802
      from urllib.parse import unquote
      path = unquote(self.path.split("?")[0])
      with registry.lock:
        registry.requests.append({"method": "GET", "path": path})
        if not self._authorized():
          return None
        op = _OPERATION_PATH.match(path)
        if op:
          if op.group(1) not in registry.operations:
            return self._error(404, "NOT_FOUND", f"operation {op.group(1)}")
          return self._send(200, registry.operations[op.group(1)])
        match = _MODEL_PATH.match(path)
        if not match:
          return self._error(404, "NOT_FOUND", f"no such method {path}")
        project, location, model_id, version = match.groups()
        name = f"projects/{project}/locations/{location}/models/{model_id}"
        model = registry.get_model(name, version)
        if model is None:
          # Not recorded as an error: push asks first whether a model or version exists.
          return self._send(404, {"error": {"code": 404, "status": "NOT_FOUND",
                                            "message": f"{name}@{version} not found"}})
        return self._send(200, model)

  return Handler


_KEY = []


def _service_account_key():
  """One RSA key per test process: the Vertex SDK keeps the credentials it first loaded
  for the life of the process, so every Server of a process trusts the same account."""
  from cryptography.hazmat.primitives.asymmetric import rsa
  if not _KEY:
    _KEY.append(rsa.generate_private_key(public_exponent=65537, key_size=2048))
  return _KEY[0]


class Server:
  """`with Server() as vertex:` serves a fresh registry on 127.0.0.1; `vertex.url`."""

  def __init__(self):
    self.registry = VertexModelRegistry()
    self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.registry))
    self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
    self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

  def __enter__(self) -> "Server":
    self.thread.start()
    return self

  def __exit__(self, *exc) -> None:
    self.httpd.shutdown()
    self.httpd.server_close()

  def credentials_file(self, path: str) -> str:
    """A service account key file (a fresh RSA key) whose token endpoint is this server."""
    from cryptography.hazmat.primitives import serialization

    key = _service_account_key()
    self.registry.public_key = key.public_key()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption()).decode()
    with open(path, "w") as f:
      json.dump({"type": "service_account", "project_id": "bertline-test",
                 "private_key_id": "test-key", "private_key": pem,
                 "client_email": self.registry.client_email, "client_id": "1",
                 "token_uri": f"{self.url}/token"}, f)
    return path
