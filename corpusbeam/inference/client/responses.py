"""Reading what an embeddings endpoint answers: results and every error-body shape.

Error bodies come in several shapes (``shared/reference/protocol.md``), all accepted:

- spec:        ``{"error": {"code", "message", "target"?, "details"?, "innererror"?}}``
- reference:   ``{"error": "...", "message", "status"}``
- 422 doc:     ``{"code", "detail": {"loc": [...], "value" | "input"}, "error", "message"}``
- FastAPI:     ``{"detail": [{"type", "loc": ["body", "<param>"], "msg", "input"}]}``
               and ``{"detail": "Extra parameters [...] are not allowed"}``
- filter:      ``{"status", "code": "content_filter", "message", "param"}``

``parse_error`` is the one place where an HTTP error answer becomes a ``StatusError``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import orjson

from corpusbeam.inference import codec
from corpusbeam.inference.errors import (
    CodecError,
    PayloadTooLargeError,
    ResponseFormatError,
    StatusError,
    status_error_class,
)

__all__ = [
    "EmbeddingsResult",
    "Usage",
    "input_position",
    "parse_embeddings",
    "parse_error",
    "request_id_of",
]

_REQUEST_ID_HEADERS = ("x-request-id", "apim-request-id", "x-ms-request-id", "request-id")
_SIZE_WORDS = re.compile(
    r"too[ _-](large|long|many)|exceed|maximum|max(imum)? (input|token|batch)|payload", re.I
)
_INPUT_POSITION = re.compile(r"^input\[(\d+)\]")


@dataclass(frozen=True, kw_only=True)
class Usage:
    """Tokens (and, for images, patches) the endpoint counted."""

    prompt_tokens: int = 0
    total_tokens: int = 0
    prompt_patches: int = 0
    total_patches: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            prompt_tokens=self.prompt_tokens + other.prompt_tokens,
            total_tokens=self.total_tokens + other.total_tokens,
            prompt_patches=self.prompt_patches + other.prompt_patches,
            total_patches=self.total_patches + other.total_patches,
        )


@dataclass(frozen=True, kw_only=True)
class EmbeddingsResult:
    """Embeddings for a batch of inputs, in input order.

    ``vectors`` is ``(n, width)`` in the encoding's natural dtype (float32, int8, uint8, or
    packed uint8 bits for binary and ubinary; see ``corpusbeam.inference.codec``). When the batch
    was embedded with ``errors="collect"``, ``failures`` maps input positions that could not be
    embedded to their error, and their rows in ``vectors`` are zero.
    """

    vectors: np.ndarray
    encoding_format: str
    dimensions: int
    model: str = ""
    ids: tuple[str, ...] = ()
    usage: Usage = field(default_factory=Usage)
    failures: Mapping[int, Exception] = field(default_factory=dict)

    @property
    def ok(self) -> np.ndarray:
        """Boolean mask of the inputs that were embedded."""
        mask = np.ones(len(self.vectors), dtype=bool)
        mask[list(self.failures)] = False
        return mask

    def __len__(self) -> int:
        return len(self.vectors)


def request_id_of(headers: Mapping[str, str]) -> str | None:
    for name in _REQUEST_ID_HEADERS:
        if headers.get(name):
            return headers[name]
    return None


def parse_error(
    status: int,
    headers: Mapping[str, str],
    content: bytes,
    *,
    retry_after: float | None = None,
) -> StatusError:
    """Turn an HTTP error answer into the right ``StatusError`` subclass."""
    body: object
    try:
        body = json.loads(content) if content else None
    except (ValueError, UnicodeDecodeError):
        body = content[:300].decode("utf-8", "replace")
    code, message, param, value = _fields(body)
    code = code or headers.get("x-ms-error-code")
    if not message:
        message = body if isinstance(body, str) and body else f"HTTP {status} from the endpoint"
    cls = status_error_class(status, code)
    sized = _SIZE_WORDS.search(f"{code or ''} {message}") and _about_input(param, message)
    if status in (400, 422) and sized:
        cls = PayloadTooLargeError
    return cls(
        str(message),
        status=status,
        code=code,
        request_id=request_id_of(headers),
        param=param,
        value=value,
        retry_after=retry_after,
        body=body,
    )


def input_position(error: StatusError) -> int | None:
    """The input position an error names (``target: "input[3]"``), if it names one."""
    if isinstance(error.param, str):
        m = _INPUT_POSITION.match(error.param)
        if m:
            return int(m.group(1))
    return None


def _about_input(param: str | None, message: str) -> bool:
    return (param or "").startswith("input") or re.search(r"input|token|batch", message, re.I)


def _fields(body: object) -> tuple[str | None, str | None, str | None, object]:
    """(code, message, param, value) from any known error-body shape."""
    if not isinstance(body, dict):
        return None, None, None, None
    err = body.get("error")
    if isinstance(err, dict):  # the spec's shape
        return (_str(err.get("code")), _str(err.get("message")), _str(err.get("target")), None)
    code = _str(body.get("code")) or _str(err)
    message = _str(body.get("message"))
    param = _str(body.get("param"))
    value = None
    detail = body.get("detail")
    if isinstance(detail, list) and detail and isinstance(detail[0], dict):
        detail = detail[0]
        message = message or _str(detail.get("msg"))
        code = code or _str(detail.get("type"))
    if isinstance(detail, dict):
        param = param or _param_from_loc(detail.get("loc"))
        value = detail.get("value", detail.get("input"))
    elif isinstance(detail, str):
        message = message or detail
    return code, message, param, value


def _param_from_loc(loc: object) -> str | None:
    if not isinstance(loc, list) or not loc:
        return None
    parts = [p for p in loc if p != "body"]
    if not parts:
        return None
    out = str(parts[0])
    for p in parts[1:]:
        out += f"[{p}]" if isinstance(p, int) else f".{p}"
    return out


def _str(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def parse_embeddings(
    content: bytes, *, n_inputs: int, encoding: str, dimensions: int | None
) -> EmbeddingsResult:
    """A 200 answer to an embeddings request, checked and decoded in input order."""
    try:
        body = orjson.loads(content)
    except orjson.JSONDecodeError as exc:
        raise ResponseFormatError(f"the answer is not JSON ({exc})") from None
    if not isinstance(body, dict) or not isinstance(body.get("data"), list):
        raise ResponseFormatError("the answer has no 'data' list")
    data = body["data"]
    if len(data) != n_inputs:
        raise ResponseFormatError(f"the answer has {len(data)} embeddings for {n_inputs} inputs")
    ordered: list[object] = [None] * n_inputs
    for pos, item in enumerate(data):
        index = item.get("index") if isinstance(item, dict) else None
        if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < n_inputs:
            raise ResponseFormatError(f"data[{pos}] has no valid index (got {index!r})")
        if ordered[index] is not None:
            raise ResponseFormatError(f"data[{pos}] repeats index {index}")
        if "embedding" not in item:
            raise ResponseFormatError(f"data[{pos}] has no embedding")
        ordered[index] = item["embedding"]
    try:
        vectors = codec.decode(ordered, encoding, dimensions=dimensions)
    except CodecError as exc:
        raise ResponseFormatError(f"cannot decode the embeddings: {exc}") from None
    width = vectors.shape[1] if vectors.ndim == 2 else 0
    usage = body.get("usage") if isinstance(body.get("usage"), dict) else {}
    return EmbeddingsResult(
        vectors=vectors,
        encoding_format=encoding,
        dimensions=width * 8 if encoding in codec.BIT_ENCODINGS else width,
        model=str(body.get("model") or ""),
        ids=(str(body["id"]),) if body.get("id") else (),
        usage=Usage(**{k: int(usage.get(k) or 0) for k in Usage.__dataclass_fields__}),
    )
