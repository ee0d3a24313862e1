"""Turning text into unit vectors: OpenAI embeddings, or a deterministic offline embedder.

`LexicalEmbedder` is what runs without an OpenAI key. It is lexical, not semantic: it hashes
words (lower-cased, stop words dropped, a plural `s` trimmed) and the character trigrams
inside them into a fixed number of signed dimensions, weights repeated words sub-linearly
and normalises the result. Two texts are similar when they share words or word fragments;
synonyms mean nothing to it. It needs no network, no model file, and gives the same vector for
the same text on every machine, which is what tests and `make run` need.

Every embedder returns unit vectors, so the index can score with a plain dot product.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections import Counter
from collections.abc import Sequence
from typing import Protocol

from openai import OpenAI

LEXICAL_DIMENSION = 512
TRIGRAM_WEIGHT = 0.35
LEXICAL_THRESHOLD_SCALE = 0.5
OPENAI_EMBEDDING_MODEL = "text-embedding-3-small"
# text-embedding-3 models can return shorter vectors; 512 keeps an exhaustive search over
# 10,000 documents per tenant within a few milliseconds in Qdrant's local mode.
OPENAI_EMBEDDING_DIMENSION = 512
OPENAI_BATCH_SIZE = 256

WORD = re.compile(r"[a-z0-9]+(?:[.'][a-z0-9]+)*")
# fmt: off
STOP_WORDS = frozenset({
    "a", "an", "and", "are", "as", "at", "be", "by", "did", "do", "does", "for", "from", "had",
    "has", "have", "how", "i", "in", "is", "it", "its", "of", "on", "or", "our", "than", "that",
    "the", "their", "them", "there", "these", "they", "this", "to", "was", "we", "were", "what",
    "when", "where", "which", "who", "why", "will", "with", "you", "your", "me", "my", "show",
    "tell", "give", "list", "about", "across", "over", "into", "per",
})
# fmt: on


class Embedder(Protocol):
    """Anything that embeds texts into unit vectors of one fixed dimension."""

    @property
    def name(self) -> str: ...

    @property
    def dimension(self) -> int: ...

    def embed(self, texts: Sequence[str]) -> list[list[float]]: ...

    def score_threshold(self, configured: float) -> float:
        """The similarity floor to search with, for a configured `RAG_SIMILARITY_THRESHOLD`."""
        ...


def terms_of(text: str) -> list[str]:
    """The words the lexical embedder and the extractive answerer compare."""
    terms = []
    for word in WORD.findall(text.lower()):
        if word in STOP_WORDS:
            continue
        if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
            word = word[:-1]
        terms.append(word)
    return terms


def _slot(feature: str, dimension: int) -> tuple[int, float]:
    digest = hashlib.blake2b(feature.encode(), digest_size=8).digest()
    number = int.from_bytes(digest, "little")
    return number % dimension, 1.0 if number >> 63 else -1.0


def normalized(vector: Sequence[float]) -> list[float]:
    norm = math.sqrt(sum(value * value for value in vector))
    if norm == 0:
        return list(vector)
    return [value / norm for value in vector]


class LexicalEmbedder:
    """Hashed words and word trigrams into `dimension` signed slots (see the module doc)."""

    def __init__(self, dimension: int = LEXICAL_DIMENSION) -> None:
        self._dimension = dimension

    @property
    def name(self) -> str:
        return f"lexical-hash-{self._dimension}"

    @property
    def dimension(self) -> int:
        return self._dimension

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        return [self._embed_one(text) for text in texts]

    def score_threshold(self, configured: float) -> float:
        # A short question fully contained in a document of n terms scores about
        # sqrt(question terms / n) here, well below what model embeddings give the same match;
        # halving the configured floor keeps 0.4 meaning "clearly related" for both.
        return configured * LEXICAL_THRESHOLD_SCALE

    def _embed_one(self, text: str) -> list[float]:
        vector = [0.0] * self._dimension
        for term, count in Counter(terms_of(text)).items():
            weight = 1.0 + math.log(count)
            index, sign = _slot("w:" + term, self._dimension)
            vector[index] += sign * weight
            padded = f"<{term}>"
            trigrams = [padded[i : i + 3] for i in range(len(padded) - 2)]
            share = TRIGRAM_WEIGHT * weight / math.sqrt(len(trigrams))
            for trigram in trigrams:
                index, sign = _slot("c:" + trigram, self._dimension)
                vector[index] += sign * share
        return normalized(vector)


class OpenAIEmbedder:
    """Embeddings from an OpenAI-compatible `/embeddings` endpoint, normalised to unit length."""

    def __init__(
        self,
        client: OpenAI,
        *,
        model: str = OPENAI_EMBEDDING_MODEL,
        dimension: int = OPENAI_EMBEDDING_DIMENSION,
    ) -> None:
        self._client = client
        self._model = model
        self._dimension = dimension

    @property
    def name(self) -> str:
        return f"openai-{self._model}-{self._dimension}"

    @property
    def dimension(self) -> int:
        return self._dimension

    def score_threshold(self, configured: float) -> float:
        return configured

    def embed(self, texts: Sequence[str]) -> list[list[float]]:
        vectors: list[list[float]] = []
        for start in range(0, len(texts), OPENAI_BATCH_SIZE):
            batch = list(texts[start : start + OPENAI_BATCH_SIZE])
            response = self._client.embeddings.create(
                model=self._model, input=batch, dimensions=self._dimension
            )
            ordered = sorted(response.data, key=lambda item: item.index)
            for item in ordered:
                if len(item.embedding) != self._dimension:
                    raise ValueError(
                        f"{self._model} returned {len(item.embedding)} dimensions, expected "
                        f"{self._dimension}; set the embedding dimension to match the model"
                    )
                vectors.append(normalized(item.embedding))
        return vectors
