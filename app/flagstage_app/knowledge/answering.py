"""Writing an answer from retrieved documents: by OpenAI chat completions, or extractively.

Both cite their sources by document id. The extractive writer is deterministic and offline: it
picks the retrieved sentences that share the most words with the question, in order of
relevance, each followed by the id of its document. The OpenAI writer is told to answer only
from the numbered sources and to cite their ids; its citations are the ids it mentions.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from openai import OpenAI

from flagstage_app.knowledge.embedding import terms_of
from flagstage_app.knowledge.index import Hit

OPENAI_CHAT_MODEL = "gpt-4o-mini"
EXTRACTIVE_SENTENCES = 3
SENTENCE_END = re.compile(r"(?<=[.!?;])\s+")
SYSTEM_PROMPT = (
    "You answer questions about one customer's accounts using only the sources given. "
    "Cite every fact with the source id in square brackets, like [account:a-17]. "
    "If the sources do not answer the question, say so in one sentence."
)


@dataclass(frozen=True)
class Answer:
    text: str
    citations: tuple[str, ...]
    written_by: str


class AnswerWriter(Protocol):
    def write(self, question: str, hits: Sequence[Hit]) -> Answer: ...


def no_match_answer(threshold: float) -> str:
    return (
        "No document in this customer's knowledge base is close enough to the question "
        f"(similarity threshold {threshold:g}); try other words, or refresh the knowledge base."
    )


class ExtractiveWriter:
    """Quote the most relevant retrieved sentences, each with its document id."""

    name = "extractive"

    def write(self, question: str, hits: Sequence[Hit]) -> Answer:
        wanted = set(terms_of(question))
        scored = []
        for rank, hit in enumerate(hits):
            for position, sentence in enumerate(SENTENCE_END.split(hit.text.strip())):
                shared = len(wanted.intersection(terms_of(sentence)))
                if shared:
                    scored.append((-shared, rank, position, sentence.strip(), hit.doc_id))
        if not scored and hits:
            # Similar by word fragments only: quote the best document's opening instead.
            first = SENTENCE_END.split(hits[0].text.strip())[0]
            scored.append((0, 0, 0, first, hits[0].doc_id))
        chosen = sorted(scored)[:EXTRACTIVE_SENTENCES]
        text = " ".join(f"{sentence} [{doc_id}]" for *_, sentence, doc_id in chosen)
        citations = tuple(dict.fromkeys(doc_id for *_, doc_id in chosen))
        return Answer(text, citations, self.name)


class OpenAIWriter:
    """Answers from an OpenAI-compatible `/chat/completions` endpoint, grounded in the hits."""

    def __init__(self, client: OpenAI, *, model: str = OPENAI_CHAT_MODEL) -> None:
        self._client = client
        self._model = model
        self.name = f"openai-{model}"

    def write(self, question: str, hits: Sequence[Hit]) -> Answer:
        sources = "\n\n".join(f"[{hit.doc_id}] {hit.text}" for hit in hits)
        response = self._client.chat.completions.create(
            model=self._model,
            temperature=0,
            messages=[
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": f"Sources:\n{sources}\n\nQuestion: {question}"},
            ],
        )
        text = (response.choices[0].message.content or "").strip()
        if not text:
            raise ValueError(f"{self._model} returned an empty answer")
        cited = tuple(hit.doc_id for hit in hits if f"[{hit.doc_id}]" in text)
        return Answer(text, cited, self.name)
