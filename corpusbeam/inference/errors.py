"""The wire protocol's errors: codecs and talking to an embeddings endpoint.

They sit under the project's root, ``corpusbeam.errors.CorpusbeamError`` (which also
holds ``ConfigError``, ``IndexFolderError`` and ``JobError``), so a caller still needs
only ``except CorpusbeamError``. Library exceptions (httpx, json) are converted where
they are caught, once, into one of these.

    CorpusbeamError              corpusbeam.errors
    ├── CodecError               an embeddings payload cannot be encoded or decoded (item index)
    └── EmbeddingError           talking to an embeddings endpoint failed
        ├── TransportError       no usable HTTP answer
        │   ├── ConnectError         could not connect, or the connection dropped
        │   ├── EndpointTimeout      no answer in time
        │   └── ResponseFormatError  an answer that is not a valid embeddings response
        ├── DeadlineExceeded     retries ran out of the total time allowed
        └── StatusError          the endpoint answered with an HTTP error status
            ├── BadRequestError      400
            │   └── ContentFilterError   400 with code content_filter
            ├── AuthenticationError  401, 403
            ├── NotFoundError        404
            ├── PayloadTooLargeError 413 (or a 400/422 that names the input's size)
            ├── UnprocessableError   422: a parameter the model does not support
            ├── RateLimitError       429
            └── ServerError          5xx

Messages never contain credentials: the classes here are given none.
"""

from __future__ import annotations

from corpusbeam.errors import CorpusbeamError

__all__ = [
    "AuthenticationError",
    "BadRequestError",
    "CodecError",
    "ConnectError",
    "ContentFilterError",
    "DeadlineExceeded",
    "EmbeddingError",
    "EndpointTimeout",
    "NotFoundError",
    "PayloadTooLargeError",
    "RateLimitError",
    "ResponseFormatError",
    "ServerError",
    "StatusError",
    "TransportError",
    "UnprocessableError",
    "status_error_class",
]


class CodecError(CorpusbeamError, ValueError):
    """An embeddings payload cannot be encoded or decoded.

    ``index`` is the position of the offending item in the batch, or None when the
    problem is with the batch as a whole.
    """

    def __init__(self, message: str, *, index: int | None = None, encoding: str | None = None):
        self.index = index
        self.encoding = encoding
        where = f"item {index}" if index is not None else "batch"
        fmt = f" ({encoding})" if encoding else ""
        super().__init__(f"{where}{fmt}: {message}")


class EmbeddingError(CorpusbeamError):
    """Talking to an embeddings endpoint failed."""


class TransportError(EmbeddingError):
    """No usable HTTP answer came back (connection, timeout, malformed body)."""


class ConnectError(TransportError):
    """Could not connect to the endpoint, or the connection dropped mid-request."""


class EndpointTimeout(TransportError):
    """The endpoint did not answer within the configured timeout."""


class ResponseFormatError(TransportError):
    """The endpoint answered 200 but the body is not a valid embeddings response."""


class DeadlineExceeded(EmbeddingError):
    """Retries ran out of the total time allowed for one call; ``last`` is the last error."""

    def __init__(self, message: str, *, last: BaseException | None = None) -> None:
        self.last = last
        super().__init__(message)


class StatusError(EmbeddingError):
    """The endpoint answered with an HTTP error status.

    Attributes: ``status`` (int), ``code`` (the service's error code, from the body or
    the ``x-ms-error-code`` header), ``request_id``, ``param`` and ``value`` (for a 422,
    the parameter the model refused and what was sent), ``retry_after`` (seconds, when
    the answer said), and ``body`` (the parsed error body, for debugging).
    """

    def __init__(
        self,
        message: str,
        *,
        status: int,
        code: str | None = None,
        request_id: str | None = None,
        param: str | None = None,
        value: object = None,
        retry_after: float | None = None,
        body: object = None,
    ) -> None:
        self.status = status
        self.code = code
        self.request_id = request_id
        self.param = param
        self.value = value
        self.retry_after = retry_after
        self.body = body
        self.message = message
        parts = [f"HTTP {status}"]
        if code:
            parts.append(f"code={code}")
        if param:
            parts.append(f"param={param}")
            if value is not None:
                parts.append(f"value={value!r}")
        if request_id:
            parts.append(f"request_id={request_id}")
        super().__init__(f"{message} [{', '.join(parts)}]")


class BadRequestError(StatusError):
    """400: the request is malformed or was refused."""


class ContentFilterError(BadRequestError):
    """400 with code ``content_filter``: an input was refused by the content filter."""


class AuthenticationError(StatusError):
    """401 or 403: the credential is missing, wrong, or not allowed."""


class NotFoundError(StatusError):
    """404: the route, deployment or modality is not served."""


class PayloadTooLargeError(StatusError):
    """413, or a 400/422 that names the size of the input: split the request."""


class UnprocessableError(StatusError):
    """422: a parameter the model does not support; ``param`` and ``value`` name it."""


class RateLimitError(StatusError):
    """429: rate limited; ``retry_after`` says how long the endpoint asked us to wait."""


class ServerError(StatusError):
    """5xx: the endpoint failed; usually transient."""


_BY_STATUS: dict[int, type[StatusError]] = {
    400: BadRequestError,
    401: AuthenticationError,
    403: AuthenticationError,
    404: NotFoundError,
    413: PayloadTooLargeError,
    422: UnprocessableError,
    429: RateLimitError,
}


def status_error_class(status: int, code: str | None = None) -> type[StatusError]:
    """The StatusError subclass for an HTTP status (and error code, for content filters)."""
    if status == 400 and code == "content_filter":
        return ContentFilterError
    if status >= 500:
        return ServerError
    return _BY_STATUS.get(status, StatusError)
