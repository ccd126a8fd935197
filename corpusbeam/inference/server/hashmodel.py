"""``hash``: a deterministic, dependency-free embedding model for tests and demos.

Text: feature hashing. The features of a text are its lower-cased word unigrams, word
bigrams, and byte 3-, 4- and 5-grams of the lower-cased, space-padded UTF-8 text. Each
feature is hashed to 64 bits with a stable hash (CRC-32 for words, a polynomial rolling hash
for byte n-grams, both finished with the splitmix64 mixer; never Python's salted ``hash``),
which picks a dimension (low bits) and a sign (top bit). The signed count c in each
dimension becomes ``sign(c) * (1 + log|c|)`` (sublinear tf: a feature seen c times weighs
``1 + log(c)`` unless it shares the dimension with another). The three groups (unigrams,
bigrams, n-grams) are normalised separately and added with weights 1, 0.5 and 1. All texts of
a batch are hashed together, in a handful of numpy calls. Texts that share words and
spellings land close; unrelated texts are nearly orthogonal.

Images: colour and layout. The image (alpha composited on white) is reduced to an 8x8 grid
of mean YCbCr colours, a 4x4x4 RGB colour histogram, and 8x8 luma gradients; the groups are
normalised, concatenated and projected to the native dimension by a fixed Gaussian matrix
(seeded, so the same on every machine). Resized, recompressed or slightly recoloured copies
land close; different pictures land far. An image with text is the normalised sum of both.

``input_type``: ``query`` and ``document`` vectors get a small fixed offset each (a seeded
unit vector times 0.1, then renormalised), so they differ from each other and from ``text``
while query-to-document retrieval ranks as before.

Every vector is L2-normalised. Any ``dimensions`` that is a multiple of 8, up to the native
dimension, is supported (the app truncates and renormalises).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import numpy as np
from PIL import Image

from corpusbeam.inference.server import hash_tokenizer as tokens

__all__ = ["HashModel"]

_M64 = 0xFFFFFFFFFFFFFFFF
_PRIME = np.uint64(0x100000001B3)
_GROUP_WEIGHTS = (1.0, 0.5, 1.0)  # unigrams, bigrams, byte n-grams
_NGRAMS = (3, 4, 5)
_TYPE_OFFSET = 0.1
_TYPE_SEEDS = {"query": 1, "document": 2}
_PROJECTION_SEED = 20240501
_IMAGE_GRID = 8


def _mix(h: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, elementwise on uint64 (wraps around, as intended)."""
    h = h ^ (h >> np.uint64(30))
    h = h * np.uint64(0xBF58476D1CE4E5B9)
    h = h ^ (h >> np.uint64(27))
    h = h * np.uint64(0x94D049BB133111EB)
    return h ^ (h >> np.uint64(31))


def _ngram_hashes(padded: list[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """Byte 3-, 4- and 5-gram hashes of each text, and the row each came from.

    The texts are joined with one separator byte between them (row -1) and an n-gram is kept
    when its first and last byte belong to the same row, so none crosses a boundary.
    """
    lengths = np.array([len(p) for p in padded], dtype=np.intp)
    b = np.frombuffer(b"\x00".join(padded), dtype=np.uint8).astype(np.uint64)
    rows = np.repeat(np.arange(len(padded), dtype=np.intp), lengths + 1)[: len(b)]
    sep_at = np.cumsum(lengths + 1)[:-1] - 1
    rows[sep_at] = -1
    hashes, owners = [], []
    for n in _NGRAMS:
        m = len(b) - n + 1
        if m <= 0:
            continue
        h = np.full(m, np.uint64(n), dtype=np.uint64)
        for k in range(n):
            h = h * _PRIME + b[k : k + m]
        keep = (rows[:m] == rows[n - 1 : n - 1 + m]) & (rows[:m] >= 0)
        hashes.append(_mix(h[keep]))
        owners.append(rows[:m][keep])
    if not hashes:
        return np.empty(0, np.uint64), np.empty(0, np.intp)
    return np.concatenate(hashes), np.concatenate(owners)


def _unit(v: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(v))
    return v / norm if norm > 0 else v


class HashModel:
    """Feature-hashing text and colour-layout image embeddings; see the module docstring."""

    name = "corpusbeam-hash"
    provider = "corpusbeam"
    modalities = frozenset({"text", "image"})
    max_input_tokens: int | None = None

    def __init__(self, dimensions: int = 256) -> None:
        if dimensions % 8 or dimensions < 8:
            raise ValueError(f"dimensions={dimensions}: must be a multiple of 8")
        self.native_dimensions = dimensions
        self.supported_dimensions = frozenset(range(8, dimensions + 1, 8))
        d = dimensions
        rng = np.random.default_rng(_PROJECTION_SEED)
        self._fallback = _unit(rng.standard_normal(d)).astype(np.float32)
        self._offsets = {
            t: _unit(np.random.default_rng([_PROJECTION_SEED, s]).standard_normal(d))
            for t, s in _TYPE_SEEDS.items()
        }
        n_features = _IMAGE_GRID * _IMAGE_GRID * 3 + 64 + 2 * _IMAGE_GRID * (_IMAGE_GRID - 1)
        self._projection = rng.standard_normal((n_features, d)).astype(np.float32)

    # -- text ---------------------------------------------------------------------------

    def count_tokens(self, text: str) -> int:
        return tokens.count_tokens(text)

    def _text_vectors(self, texts: Sequence[str]) -> np.ndarray:
        """``(n, d)`` float64 text vectors: all features of the batch hashed at once."""
        n, d = len(texts), self.native_dimensions
        per_text = [tokens.words(t) for t in texts]
        word_rows = np.repeat(np.arange(n, dtype=np.intp), [len(ws) for ws in per_text])
        crcs = [zlib.crc32(w.encode("utf-8")) for ws in per_text for w in ws]
        uni = _mix(np.array(crcs, dtype=np.uint64))
        same = word_rows[:-1] == word_rows[1:]  # bigrams never span two texts
        bi = _mix(uni[:-1][same] * _PRIME + (uni[1:][same] ^ np.uint64(0x9E3779B97F4A7C15)))
        padded = [(" " + " ".join(t.lower().split()) + " ").encode("utf-8") for t in texts]
        grams, gram_rows = _ngram_hashes(padded)
        h = np.concatenate([uni, bi, grams])
        r = np.concatenate([word_rows, word_rows[:-1][same], gram_rows])
        g = np.repeat(np.arange(3, dtype=np.intp), [len(uni), len(bi), len(grams)])
        # Signed counts per (text, group, dimension) in one bincount, then sublinear tf.
        idx = (h % np.uint64(d)).astype(np.intp)
        sign = np.where((h >> np.uint64(63)) == 1, -1.0, 1.0)
        flat = (r * 3 + g) * d + idx
        counts = np.bincount(flat, weights=sign, minlength=n * 3 * d).reshape(n, 3, d)
        magnitude = np.abs(counts)
        parts = np.sign(counts) * np.where(
            magnitude > 0, 1.0 + np.log(np.maximum(magnitude, 1.0)), 0.0
        )
        norms = np.linalg.norm(parts, axis=2, keepdims=True)
        parts = np.divide(parts, norms, out=np.zeros_like(parts), where=norms > 0)
        vecs = np.einsum("ngd,g->nd", parts, np.array(_GROUP_WEIGHTS))
        norms = np.linalg.norm(vecs, axis=1, keepdims=True)
        empty = norms[:, 0] == 0
        vecs = np.divide(vecs, norms, out=np.zeros_like(vecs), where=norms > 0)
        vecs[empty] = self._fallback
        return vecs

    def embed_texts(self, texts: Sequence[str], input_type: str) -> np.ndarray:
        out = self._text_vectors(texts) if texts else self._empty()
        return self._typed(out, input_type)

    # -- images -------------------------------------------------------------------------

    def _image_vector(self, image: Image.Image) -> np.ndarray:
        if image.mode in ("RGBA", "LA", "PA") or (
            image.mode == "P" and "transparency" in image.info
        ):
            rgba = image.convert("RGBA")
            rgb = Image.new("RGB", rgba.size, (255, 255, 255))
            rgb.paste(rgba, mask=rgba.getchannel("A"))
        else:
            rgb = image.convert("RGB")
        small = rgb.resize((32, 32), Image.Resampling.BOX, reducing_gap=2.0)
        g = _IMAGE_GRID
        grid = np.asarray(small.resize((g, g), Image.Resampling.BOX).convert("YCbCr"), np.float32)
        colour = ((grid - 128.0) / 128.0).ravel()
        px = np.asarray(small, dtype=np.uint8).reshape(-1, 3) // 64
        bins = px[:, 0].astype(np.intp) * 16 + px[:, 1] * 4 + px[:, 2]
        hist = np.bincount(bins, minlength=64).astype(np.float32) / len(bins) - 1.0 / 64
        luma = grid[:, :, 0] / 255.0
        edges = np.concatenate([np.diff(luma, axis=1).ravel(), np.diff(luma, axis=0).ravel()])
        feats = np.concatenate([_unit(colour), _unit(hist), 0.5 * _unit(edges)])
        return _unit((feats @ self._projection).astype(np.float64))

    def embed_images(
        self, images: Sequence[Image.Image], texts: Sequence[str | None], input_type: str
    ) -> np.ndarray:
        rows = []
        for image, text in zip(images, texts, strict=True):
            vec = self._image_vector(image)
            if text:
                vec = _unit(vec + self._text_vectors([text])[0])
            rows.append(vec)
        out = np.stack(rows) if rows else self._empty()
        return self._typed(out, input_type)

    # -- shared -------------------------------------------------------------------------

    def _empty(self) -> np.ndarray:
        return np.empty((0, self.native_dimensions), dtype=np.float64)

    def _typed(self, xb: np.ndarray, input_type: str) -> np.ndarray:
        offset = self._offsets.get(input_type)
        if offset is not None and len(xb):
            xb = xb + _TYPE_OFFSET * offset
            xb = xb / np.linalg.norm(xb, axis=1, keepdims=True)
        return xb.astype(np.float32)
