"""Schemathesis against the official OpenAPI file, limited to the two embeddings operations.

The spec (Swagger 2.0, ``2024-05-01-preview``) is copied into ``tests/data`` so the test is
self-contained. Schemathesis runs its coverage and fuzzing phases with a fixed seed and a
bounded number of examples, over loopback, with every check on except one:

- ``positive_data_acceptance`` is off: it expects every schema-valid request to succeed, but
  the spec itself says the model answers 422 for a ``dimensions`` / ``encoding_format`` /
  ``input_type`` it cannot honour, and the schema's types admit requests the service rejects
  by design (an empty ``input`` list or empty strings, unknown body keys while
  ``extra-parameters`` is ``error``, image strings that are not data URLs).

So the run asserts: no 5xx, every answer's status, content type, headers and body conform to
the spec (errors in its ErrorResponse shape), schema-invalid requests are rejected, a missing
``api-version`` is refused, and unsupported methods are 405 with ``Allow``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.endpoints import KEY
from tests.support.schemathesis_run import run_schemathesis

SPEC = (
    Path(__file__).resolve().parents[1]
    / "data"
    / "ai-model-inference-2024-05-01-preview.openapi.json"
)


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_embeddings_operations_conform_to_the_spec(endpoint, tmp_path):
    result = run_schemathesis(
        str(SPEC),
        "--url", endpoint.url,
        "--include-path-regex", r"^/(images/)?embeddings$",
        "--header", f"api-key: {KEY}",
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-2000:]
    assert "2 selected" in result.stdout and " passed" in result.stdout
