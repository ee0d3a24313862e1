"""The tenant-scoped knowledge base behind `query_type: semantic`.

`install_knowledge_base(app)` plugs it into the app; `KnowledgeIndex` is the Qdrant side
(a collection per tenant behind an alias), `embedding` and `answering` hold the OpenAI and the
offline implementations, `documents` writes what gets indexed from SQL.
"""

from flagstage_app.knowledge.index import Document, Hit, KnowledgeIndex
from flagstage_app.knowledge.service import (
    KnowledgeBase,
    build_knowledge_base,
    install_knowledge_base,
)

__all__ = [
    "Document",
    "Hit",
    "KnowledgeBase",
    "KnowledgeIndex",
    "build_knowledge_base",
    "install_knowledge_base",
]
