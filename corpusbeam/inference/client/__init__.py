"""The embeddings client: both routes, every request option, honest retries, many in flight.

from corpusbeam.inference.client import ClientSettings, EmbeddingsClient, EnvApiKey

settings = ClientSettings(endpoint="https://...", credential=EnvApiKey(var="AZURE_AI_KEY"),
                          encoding_format="int8", input_type="document")
with EmbeddingsClient(settings) as client:
    result = client.embed_texts(["a text", "another"])
    result.vectors  # (2, d) int8, in input order
"""

from corpusbeam.inference.client.core import AsyncEmbeddingsClient
from corpusbeam.inference.client.credentials import ApiKey, EntraToken, EnvApiKey
from corpusbeam.inference.client.images import ImageInput, image_data_url, sniff_image_format
from corpusbeam.inference.client.info import ModelInfo, read_model_info
from corpusbeam.inference.client.responses import EmbeddingsResult, Usage, parse_error
from corpusbeam.inference.client.retry import RetryPolicy, retry_after_seconds
from corpusbeam.inference.client.settings import DEFAULT_API_VERSION, ClientSettings, Timeouts
from corpusbeam.inference.client.sync import EmbeddingsClient
from corpusbeam.inference.client.throttle import Throttle
from corpusbeam.inference.client.transport import ClientStats

__all__ = [
    "DEFAULT_API_VERSION",
    "ApiKey",
    "AsyncEmbeddingsClient",
    "ClientSettings",
    "ClientStats",
    "EmbeddingsClient",
    "EmbeddingsResult",
    "EntraToken",
    "EnvApiKey",
    "ImageInput",
    "ModelInfo",
    "RetryPolicy",
    "Throttle",
    "Timeouts",
    "Usage",
    "image_data_url",
    "parse_error",
    "read_model_info",
    "retry_after_seconds",
    "sniff_image_format",
]
