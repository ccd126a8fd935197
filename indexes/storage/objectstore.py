"""Objects on S3 or GCS for the things Beam's filesystems cannot do: conditional writes.

The index job's workers write through Beam's filesystems; the launcher and every reader
(which import no Beam) use this small module to read and write a version's files, to
switch ``CURRENT`` only if nobody else moved it (S3 ``If-Match`` on its ETag, GCS
``ifGenerationMatch``) and to create the run's lease only if none exists (S3
``If-None-Match: *``, GCS ``ifGenerationMatch=0``).

    store = open_store("s3://bucket/index")     # boto3's usual settings, or S3Settings
    data, tag = store.get("CURRENT")            # (None, None) when absent
    store.put("CURRENT", b"v2\\n", if_match=tag)  # PreconditionFailed if it moved

``open_store`` takes S3 settings from ``S3Settings`` (the same names as Beam's S3
options: endpoint URL, keys, region, verify) or from boto3's environment
(``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``, ...). Keys are never logged, put in an
error or written anywhere. Needs ``pip install corpusbeam[s3]`` (boto3) or
``corpusbeam[gcs]`` (google-cloud-storage).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from corpusbeam.errors import ConfigError, IndexFolderError

__all__ = [
    "SCHEMES",
    "ObjectStore",
    "PreconditionFailed",
    "S3Settings",
    "is_url",
    "open_store",
    "s3_settings_from_args",
    "split_url",
]

SCHEMES = ("s3", "gs")


class PreconditionFailed(IndexFolderError):
    """A conditional write lost: the object changed (or exists) since it was read."""


def is_url(path: object) -> bool:
    """Whether ``path`` names an object store location (``s3://`` or ``gs://``)."""
    return isinstance(path, str) and urlsplit(path).scheme in SCHEMES


def split_url(url: str) -> tuple[str, str, str]:
    """(scheme, bucket, prefix without slashes at either end)."""
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES or not parts.netloc:
        raise ConfigError("url", url, "expected s3://bucket/prefix or gs://bucket/prefix")
    return parts.scheme, parts.netloc, parts.path.strip("/")


@dataclass(frozen=True, kw_only=True)
class S3Settings:
    """How to reach S3 (Beam's ``--s3_*`` options); None means boto3's own default."""

    endpoint_url: str | None = None
    access_key_id: str | None = field(default=None, repr=False)
    secret_access_key: str | None = field(default=None, repr=False)
    session_token: str | None = field(default=None, repr=False)
    region_name: str | None = None
    verify: bool | str | None = None


_S3_FLAGS = {
    "--s3_endpoint_url": "endpoint_url",
    "--s3_access_key_id": "access_key_id",
    "--s3_secret_access_key": "secret_access_key",
    "--s3_session_token": "session_token",
    "--s3_region_name": "region_name",
    "--s3_verify": "verify",
}


def s3_settings_from_args(args: Sequence[str]) -> S3Settings:
    """The ``--s3_*`` Beam options among ``args`` (``--flag=value`` or ``--flag value``)."""
    values: dict[str, object] = {}
    args = list(args)
    for i, arg in enumerate(args):
        flag, eq, value = arg.partition("=")
        if flag in _S3_FLAGS:
            if not eq:
                value = args[i + 1] if i + 1 < len(args) else ""
            values[_S3_FLAGS[flag]] = value
    verify = values.get("verify")
    if isinstance(verify, str) and verify.lower() in ("false", "0", "no"):
        values["verify"] = False
    return S3Settings(**values)


class ObjectStore:
    """Objects under one prefix of a bucket; keys are relative to the prefix."""

    url: str

    def get(self, key: str) -> tuple[bytes | None, str | None]:
        """(data, version tag) or (None, None) when the object does not exist."""
        raise NotImplementedError

    def read(self, key: str) -> bytes:
        data, _ = self.get(key)
        if data is None:
            raise IndexFolderError(f"{self.url}/{key} does not exist")
        return data

    def put(
        self, key: str, data: bytes, *, if_match: str | None = None, if_none_match: bool = False
    ) -> str:
        """Write ``data``; with ``if_match`` only over that version, with ``if_none_match``
        only if absent (else ``PreconditionFailed``). Returns the new version tag."""
        raise NotImplementedError

    def delete(self, key: str) -> None:
        raise NotImplementedError

    def list(self, prefix: str = "") -> Iterator[tuple[str, int]]:
        """(key, size) of every object under ``prefix``."""
        raise NotImplementedError

    def download(self, key: str, path) -> None:
        raise NotImplementedError

    def upload(self, key: str, path) -> None:
        """Write the file ``path`` to ``key``, streamed (in parts when large)."""
        raise NotImplementedError

    def copy(self, source: str, key: str) -> None:
        """Copy the object ``source`` to ``key`` inside the store (server-side: the bytes do
        not pass through this machine)."""
        raise NotImplementedError

    def delete_prefix(self, prefix: str) -> int:
        keys = [k for k, _ in self.list(prefix)]
        for key in keys:
            self.delete(key)
        return len(keys)


class _S3(ObjectStore):
    def __init__(self, url: str, settings: S3Settings) -> None:
        try:
            import boto3
            from botocore.exceptions import ClientError
        except ImportError:
            raise ConfigError(
                "output", url, "S3 needs boto3: pip install 'corpusbeam[s3]'"
            ) from None
        _, self.bucket, self.prefix = split_url(url)
        self.url = url.rstrip("/")
        self._ClientError = ClientError
        kwargs = {
            "endpoint_url": settings.endpoint_url,
            "aws_access_key_id": settings.access_key_id,
            "aws_secret_access_key": settings.secret_access_key,
            "aws_session_token": settings.session_token,
            "region_name": settings.region_name,
        }
        if settings.verify is not None:
            kwargs["verify"] = settings.verify
        self._client = boto3.client("s3", **{k: v for k, v in kwargs.items() if v is not None})

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    def _status(self, exc) -> int:
        return int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0))

    def get(self, key: str) -> tuple[bytes | None, str | None]:
        try:
            r = self._client.get_object(Bucket=self.bucket, Key=self._key(key))
        except self._ClientError as exc:
            if self._status(exc) == 404:
                return None, None
            raise IndexFolderError(f"{self.url}/{key}: {_reason(exc)}") from None
        return r["Body"].read(), r["ETag"]

    def put(self, key, data, *, if_match=None, if_none_match=False) -> str:
        kwargs = {"Bucket": self.bucket, "Key": self._key(key), "Body": data}
        if if_match is not None:
            kwargs["IfMatch"] = if_match
        if if_none_match:
            kwargs["IfNoneMatch"] = "*"
        try:
            return self._client.put_object(**kwargs)["ETag"]
        except self._ClientError as exc:
            if self._status(exc) in (409, 412):
                raise PreconditionFailed(f"{self.url}/{key} changed: {_reason(exc)}") from None
            raise IndexFolderError(f"{self.url}/{key}: {_reason(exc)}") from None

    def delete(self, key: str) -> None:
        self._client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def list(self, prefix: str = "") -> Iterator[tuple[str, int]]:
        base = self._key(prefix)
        strip = len(self.prefix) + 1 if self.prefix else 0
        pages = self._client.get_paginator("list_objects_v2")
        for page in pages.paginate(Bucket=self.bucket, Prefix=base):
            for obj in page.get("Contents", []):
                yield obj["Key"][strip:], int(obj["Size"])

    def download(self, key: str, path) -> None:
        self._client.download_file(self.bucket, self._key(key), str(path))

    def upload(self, key: str, path) -> None:
        from boto3.exceptions import S3UploadFailedError

        try:  # boto3's managed upload: multipart past its threshold
            self._client.upload_file(str(path), self.bucket, self._key(key))
        except (self._ClientError, S3UploadFailedError) as exc:
            raise IndexFolderError(f"{self.url}/{key}: {_reason(exc)}") from None

    def copy(self, source: str, key: str) -> None:
        try:  # boto3's managed copy: multipart server-side copies past 5 GB
            self._client.copy(
                {"Bucket": self.bucket, "Key": self._key(source)}, self.bucket, self._key(key)
            )
        except self._ClientError as exc:
            raise IndexFolderError(f"{self.url}/{source} -> {key}: {_reason(exc)}") from None


class _GCS(ObjectStore):
    """Google Cloud Storage (generation numbers are the version tags)."""

    def __init__(self, url: str) -> None:
        try:
            from google.api_core import exceptions
            from google.cloud import storage
        except ImportError:
            raise ConfigError(
                "output", url, "GCS needs google-cloud-storage: pip install 'corpusbeam[gcs]'"
            ) from None
        _, bucket, self.prefix = split_url(url)
        self.url = url.rstrip("/")
        self._exc = exceptions
        self._bucket = storage.Client().bucket(bucket)

    def _key(self, key: str) -> str:
        return f"{self.prefix}/{key}" if self.prefix else key

    @contextlib.contextmanager
    def _converted(self, key: str) -> Iterator[None]:
        """google-cloud-storage's errors as ours, naming the object."""
        try:
            yield
        except self._exc.PreconditionFailed as exc:
            raise PreconditionFailed(f"{self.url}/{key} changed: {exc.message}") from None
        except self._exc.GoogleAPICallError as exc:
            raise IndexFolderError(f"{self.url}/{key}: {exc.code} {exc.message}") from None

    def get(self, key: str) -> tuple[bytes | None, str | None]:
        for _ in range(3):  # it may be replaced between reading its generation and its bytes
            with contextlib.suppress(PreconditionFailed), self._converted(key):
                blob = self._bucket.get_blob(self._key(key))
                if blob is None:
                    return None, None
                generation = blob.generation  # the download may reset it from its headers
                return blob.download_as_bytes(if_generation_match=generation), str(generation)
        raise IndexFolderError(f"{self.url}/{key} kept changing while it was read")

    def put(self, key, data, *, if_match=None, if_none_match=False) -> str:
        blob = self._bucket.blob(self._key(key))
        generation = 0 if if_none_match else (int(if_match) if if_match is not None else None)
        with self._converted(key):
            blob.upload_from_string(data, if_generation_match=generation)
        return str(blob.generation)

    def delete(self, key: str) -> None:
        with self._converted(key), contextlib.suppress(self._exc.NotFound):
            self._bucket.blob(self._key(key)).delete()

    def list(self, prefix: str = "") -> Iterator[tuple[str, int]]:
        strip = len(self.prefix) + 1 if self.prefix else 0
        with self._converted(prefix):
            for blob in self._bucket.client.list_blobs(self._bucket, prefix=self._key(prefix)):
                yield blob.name[strip:], int(blob.size)

    def download(self, key: str, path) -> None:
        with self._converted(key):
            self._bucket.blob(self._key(key)).download_to_filename(str(path))

    def upload(self, key: str, path) -> None:
        with self._converted(key):  # resumable upload past google-cloud-storage's threshold
            self._bucket.blob(self._key(key)).upload_from_filename(str(path))

    def copy(self, source: str, key: str) -> None:
        src, dst = self._bucket.blob(self._key(source)), self._bucket.blob(self._key(key))
        with self._converted(source):  # rewrite: any size, in as many calls as GCS needs
            token, _, _ = dst.rewrite(src)
            while token is not None:
                token, _, _ = dst.rewrite(src, token=token)


def _reason(exc) -> str:
    err = getattr(exc, "response", {}).get("Error", {})
    return f"{err.get('Code', type(exc).__name__)}: {err.get('Message', '')}".strip(": ")


def open_store(url: str, s3: S3Settings | None = None) -> ObjectStore:
    """The store for ``url`` (``s3://bucket/prefix`` or ``gs://bucket/prefix``)."""
    scheme, _, _ = split_url(url)
    if scheme == "s3":
        return _S3(url, s3 or S3Settings())
    return _GCS(url)
