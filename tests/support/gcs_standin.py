"""A stand-in for Google Cloud Storage on loopback, for tests.

It is ``gcp-storage-emulator`` (PyPI), which serves the GCS JSON API that both
google-cloud-storage and Beam's ``gs://`` filesystem speak when ``STORAGE_EMULATOR_HOST``
names it. The emulator ignores preconditions, which the index job relies on (``CURRENT``
switched with ``ifGenerationMatch``, the lease created with ``ifGenerationMatch=0``), so
this stand-in puts a check of ``ifGenerationMatch`` in front of its object handlers, as
GCS does: 412 when the object's generation is not the one given (0: the object must not
exist). The emulator answers one request at a time, so the check and the write are atomic.

Beam's workers look for Google credentials (``google.auth.default``) before they use
GCS; ``credentials_file`` writes a stand-in user credential with a token that never
expires, so they find one at once instead of retrying for half a minute. The emulator
accepts any token; the file holds no secret.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from http import HTTPStatus
from pathlib import Path

from gcp_storage_emulator import server as emulator
from gcp_storage_emulator.exceptions import NotFound

__all__ = ["credentials_file", "running_gcs"]

_PRECONDITION_FAILED = {
    "error": {
        "code": 412,
        "message": "At least one of the pre-conditions you specified did not hold.",
        "errors": [{"reason": "conditionNotMet", "domain": "global"}],
    }
}


def _object_name(request, storage) -> str | None:
    params = request.params or {}
    if params.get("object_id"):
        return params["object_id"]
    if request.query.get("name"):
        return request.query["name"][0]
    if request.query.get("upload_id"):
        with contextlib.suppress(NotFound):
            return storage.get_resumable_file_obj(request.query["upload_id"][0])["name"]
        return None
    data = request.data
    if isinstance(data, dict):  # multipart: {"meta": ..., "content": ...}; resumable: meta
        return (data.get("meta") or data).get("name")
    return None


def _generation_checked(handler: Callable) -> Callable:
    def handle(request, response, storage, *args, **kwargs):
        wanted = request.query.get("ifGenerationMatch")
        name = _object_name(request, storage) if wanted else None
        if wanted and name is not None:
            try:
                found = storage.get_file_obj(request.params["bucket_name"], name)
                current = str(found["generation"])
            except NotFound:
                current = "0"
            if current != wanted[0]:
                response.status = HTTPStatus.PRECONDITION_FAILED
                response.json(_PRECONDITION_FAILED)
                return None
        return handler(request, response, storage, *args, **kwargs)

    handle.checked = True
    return handle


def _check_preconditions() -> None:
    for _, handlers in emulator.HANDLERS:
        for method, handler in list(handlers.items()):
            if not getattr(handler, "checked", False):
                handlers[method] = _generation_checked(handler)


@contextlib.contextmanager
def running_gcs(bucket: str) -> Iterator[str]:
    """The stand-in on a free loopback port with ``bucket`` created; yields its URL (what
    ``STORAGE_EMULATOR_HOST`` should hold)."""
    _check_preconditions()
    srv = emulator.create_server("127.0.0.1", 0, in_memory=True, default_bucket=bucket)
    srv.start()
    try:
        host, port = srv._api._httpd.server_address[:2]
        yield f"http://{host}:{port}"
    finally:
        srv.stop()


def credentials_file(path: Path) -> Path:
    """A stand-in user credential (no secret: the emulator accepts any token)."""
    path.write_text(
        json.dumps(
            {
                "type": "authorized_user",
                "client_id": "stand-in",
                "client_secret": "stand-in",
                "refresh_token": "stand-in",
                "token": "stand-in-token",
                "expiry": "2999-01-01T00:00:00Z",
            }
        )
    )
    return path
