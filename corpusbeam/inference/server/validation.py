"""Reading an embeddings request: headers and JSON body in, a checked ``EmbedRequest`` out.

Everything here raises a rejection (``corpusbeam.asgi.errors.reject``) in the spec's error
shape: 400 for a malformed request, 422 naming the parameter and value the model refuses,
413 for the size limits a client can fix by splitting (too many inputs). Limits that need
the model (tokens) or the pixels (images) are checked later, in ``corpusbeam.inference.server.app``.

``extra-parameters`` decides what happens to body keys the API does not define: ``error``
(the default) rejects them with 400 naming them; ``drop`` ignores them; ``pass-through``
accepts them (this model uses none of them, their names are logged). Anything else is 400.
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass

from corpusbeam.asgi.errors import reject
from corpusbeam.inference import codec
from corpusbeam.inference.protocol import INPUT_TYPES
from corpusbeam.inference.server.models import EmbeddingModel

__all__ = [
    "EXTRA_PARAMETERS",
    "EmbedRequest",
    "check_extra_parameters",
    "parse_body",
]

EXTRA_PARAMETERS: tuple[str, ...] = ("error", "drop", "pass-through")
KNOWN_KEYS = frozenset({"input", "dimensions", "encoding_format", "input_type", "model"})


@dataclass(frozen=True, kw_only=True)
class EmbedRequest:
    """A checked request. ``texts`` holds the text inputs, or each image's optional text."""

    images: tuple[str, ...] | None  # data URLs, image route only
    texts: tuple[str | None, ...]
    dimensions: int
    encoding_format: str
    input_type: str
    extra_keys: tuple[str, ...]


def check_extra_parameters(value: str | None) -> str:
    """The ``extra-parameters`` mode; 400 for a value the service does not know."""
    if value is None:
        return "error"
    if value not in EXTRA_PARAMETERS:
        raise reject(
            400,
            "invalid_header",
            f"extra-parameters={value!r} is not one of {', '.join(EXTRA_PARAMETERS)}",
            target="extra-parameters",
            value=value,
        )
    return value


@functools.lru_cache(maxsize=8)
def _blocked_pattern(words: tuple[str, ...]) -> re.Pattern[str] | None:
    if not words:
        return None
    alternatives = "|".join(re.escape(w) for w in words)
    return re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)", re.IGNORECASE)


def parse_body(
    raw: bytes,
    *,
    image_route: bool,
    extra_mode: str,
    model: EmbeddingModel,
    max_inputs: int,
    blocked_words: tuple[str, ...] = (),
) -> EmbedRequest:
    """Check the JSON body of an embeddings request; see the module docstring."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise reject(400, "invalid_json", "the request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise reject(400, "invalid_request", "the request body must be a JSON object")
    extra = tuple(sorted(k for k in body if k not in KNOWN_KEYS))
    if extra and extra_mode == "error":
        raise reject(
            400,
            "extra_parameters_not_allowed",
            f"extra parameters {list(extra)} are not allowed when extra-parameters is "
            "'error' (the default); send extra-parameters: drop or pass-through",
            target=extra[0],
        )
    dimensions = _dimensions(body.get("dimensions"), model)
    encoding = _choice(body.get("encoding_format"), "encoding_format", codec.ENCODINGS, "float")
    input_type = _choice(body.get("input_type"), "input_type", INPUT_TYPES, "text")
    if encoding in codec.BIT_ENCODINGS and dimensions % 8:
        raise reject(
            422,
            "unsupported_parameter",
            f"encoding_format={encoding!r} needs dimensions a multiple of 8, got {dimensions}",
            target="dimensions",
            value=dimensions,
        )
    model_name = body.get("model")
    if model_name is not None and not isinstance(model_name, str):
        raise reject(400, "invalid_request", "model must be a string", target="model")
    if image_route:
        images, texts = _image_inputs(body.get("input"), max_inputs)
    else:
        images, texts = None, _text_inputs(body.get("input"), max_inputs)
    _content_filter(texts, blocked_words)
    return EmbedRequest(
        images=images,
        texts=texts,
        dimensions=dimensions,
        encoding_format=encoding,
        input_type=input_type,
        extra_keys=extra if extra_mode == "pass-through" else (),
    )


def _dimensions(value: object, model: EmbeddingModel) -> int:
    if value is None:
        return model.native_dimensions
    if isinstance(value, bool) or not isinstance(value, int):
        raise reject(400, "invalid_request", "dimensions must be an integer", target="dimensions")
    if value not in model.supported_dimensions:
        allowed = sorted(model.supported_dimensions)
        hint = (
            f"{allowed[0]}..{allowed[-1]} in steps of {allowed[1] - allowed[0]}"
            if len(allowed) > 2
            else ", ".join(map(str, allowed))
        )
        raise reject(
            422,
            "unsupported_parameter",
            f"dimensions={value} is not supported by {model.name}; supported: {hint}",
            target="dimensions",
            value=value,
        )
    return value


def _choice(value: object, name: str, allowed: tuple[str, ...], default: str) -> str:
    if value is None:
        return default
    if not isinstance(value, str):
        raise reject(400, "invalid_request", f"{name} must be a string", target=name)
    if value not in allowed:
        raise reject(
            422,
            "unsupported_parameter",
            f"{name}={value!r} is not supported; supported: {', '.join(allowed)}",
            target=name,
            value=value,
        )
    return value


def _check_count(items: object, max_inputs: int, what: str) -> list:
    if items is None:
        raise reject(400, "missing_input", "input is required", target="input")
    if not isinstance(items, list):
        raise reject(400, "invalid_request", f"input must be a list of {what}", target="input")
    if not items:
        raise reject(400, "empty_input", "input must hold at least one item", target="input")
    if len(items) > max_inputs:
        raise reject(
            413,
            "too_many_inputs",
            f"{len(items)} inputs in one request, at most {max_inputs} allowed",
            target="input",
            value=len(items),
        )
    return items


def _text_inputs(value: object, max_inputs: int) -> tuple[str, ...]:
    items = _check_count([value] if isinstance(value, str) else value, max_inputs, "strings")
    for i, text in enumerate(items):
        if not isinstance(text, str):
            raise reject(
                400, "invalid_request", "each input must be a string", target=f"input[{i}]"
            )
        if not text.strip():
            raise reject(400, "empty_input", "input is empty", target=f"input[{i}]")
    return tuple(items)


def _image_inputs(value: object, max_inputs: int) -> tuple[tuple[str, ...], tuple[str | None, ...]]:
    items = _check_count(value, max_inputs, "{image, text?} objects")
    images, texts = [], []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not isinstance(item.get("image"), str):
            raise reject(
                400,
                "invalid_request",
                "each input must be an object with an image data URL",
                target=f"input[{i}].image",
            )
        text = item.get("text")
        if text is not None and not isinstance(text, str):
            raise reject(400, "invalid_request", "text must be a string", target=f"input[{i}].text")
        images.append(item["image"])
        texts.append(text if text and text.strip() else None)
    return tuple(images), tuple(texts)


def _content_filter(texts: tuple[str | None, ...], blocked_words: tuple[str, ...]) -> None:
    pattern = _blocked_pattern(blocked_words)
    if pattern is None:
        return
    if any(t is not None and pattern.search(t) for t in texts):
        # Like the real service, say that some input was refused, not which one.
        raise reject(
            400,
            "content_filter",
            "the request was refused by the content filter",
            target="input",
        )
