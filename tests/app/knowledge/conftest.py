"""Fixtures of the knowledge-base tests: an in-memory Qdrant, and a small OpenAI-compatible
server on loopback that answers `/v1/embeddings` and `/v1/chat/completions` for real clients."""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from flagstage_app.knowledge.embedding import LexicalEmbedder
from flagstage_app.knowledge.index import KnowledgeIndex
from openai import OpenAI
from qdrant_client import QdrantClient


@dataclass
class FakeOpenAI:
    """What the server saw, and switches that make it fail."""

    url: str
    requests: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    fail_chat: bool = False

    def client(self) -> OpenAI:
        return OpenAI(api_key="test-key", base_url=self.url, max_retries=0, timeout=10)


def _handler(state: FakeOpenAI) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _reply(self, status: int, body: dict[str, Any]) -> None:
            payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length))
            state.requests.append((self.path, body))
            if self.path.endswith("/embeddings"):
                texts = body["input"] if isinstance(body["input"], list) else [body["input"]]
                embedder = LexicalEmbedder(int(body.get("dimensions") or 512))
                data = [
                    {"object": "embedding", "index": i, "embedding": vector}
                    for i, vector in enumerate(embedder.embed(texts))
                ]
                self._reply(
                    200,
                    {
                        "object": "list",
                        "data": data,
                        "model": body["model"],
                        "usage": {"prompt_tokens": 1, "total_tokens": 1},
                    },
                )
            elif self.path.endswith("/chat/completions"):
                if state.fail_chat:
                    self._reply(500, {"error": {"message": "model overloaded", "type": "server"}})
                    return
                user = body["messages"][-1]["content"]
                first = re.search(r"^\[([^\]]+)\] (.*)$", user, re.MULTILINE)
                text = f"Per [{first.group(1)}]: {first.group(2)}" if first else "No sources given."
                self._reply(
                    200,
                    {
                        "id": "chatcmpl-test",
                        "object": "chat.completion",
                        "created": 0,
                        "model": body["model"],
                        "choices": [
                            {
                                "index": 0,
                                "message": {"role": "assistant", "content": text},
                                "finish_reason": "stop",
                            }
                        ],
                        "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                    },
                )
            else:
                self._reply(404, {"error": {"message": f"no route {self.path}"}})

    return Handler


@pytest.fixture
def fake_openai() -> Iterator[FakeOpenAI]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(FakeOpenAI("")))
    state = FakeOpenAI(f"http://127.0.0.1:{server.server_address[1]}/v1")
    server.RequestHandlerClass = _handler(state)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()
    thread.join()


@pytest.fixture
def index() -> Iterator[KnowledgeIndex]:
    client = QdrantClient(location=":memory:")
    yield KnowledgeIndex(client, LexicalEmbedder(), local=True)
    client.close()
