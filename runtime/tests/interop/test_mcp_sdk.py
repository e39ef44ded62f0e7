"""The official MCP Python SDK (PyPI `mcp`) against a running paddock-runtime.

Run through `scripts/interop.sh`, which starts PostgreSQL and the runtime, provisions the tenants
`acme` (holding examples/documents.jsonl) and `globex` (empty), and passes the endpoint and tokens in
the environment. Every test goes through the SDK's own Streamable HTTP transport, with the bearer
token set on the httpx2 client the SDK is given; an event hook records each HTTP exchange so the
tests can also check what travelled on the wire (statuses, challenges, session termination).
"""

from __future__ import annotations

import json
import os
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import httpx2
import jsonschema
import pytest
from mcp import Client
from mcp.client.auth.utils import (
    extract_resource_metadata_from_www_auth,
    extract_scope_from_www_auth,
    handle_protected_resource_response,
)
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

READ_TOOLS = {"hybrid_search", "search", "get_document", "list_documents"}
WRITE_TOOLS = {"upsert_document", "delete_document"}


def env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.fail(f"{name} is not set: run these tests through scripts/interop.sh")
    return value


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def url() -> str:
    return env("PADDOCK_MCP_URL")


@dataclass
class Exchange:
    method: str
    status: int
    headers: httpx2.Headers
    request_headers: httpx2.Headers
    request_body: bytes
    body: bytes


@dataclass
class Wire:
    """What the SDK's HTTP client sent and received, in order."""

    exchanges: list[Exchange] = field(default_factory=list)

    async def record(self, response: httpx2.Response) -> None:
        req = response.request
        # Every answer here is one JSON document (the runtime never streams a response), so reading it
        # in the hook leaves nothing for the SDK to miss.
        body = await response.aread()
        self.exchanges.append(
            Exchange(req.method, response.status_code, response.headers, req.headers, req.content, body)
        )

    def rpc_methods(self) -> list[tuple[str | None, int]]:
        out = []
        for e in self.exchanges:
            method = None
            if e.method == "POST" and e.request_body:
                method = json.loads(e.request_body).get("method")
            out.append((method, e.status))
        return out


@asynccontextmanager
async def connect(url: str, token: str, wire: Wire | None = None, mode: str = "legacy"):
    """An SDK client whose HTTP requests carry `Authorization: Bearer <token>`."""
    hooks = {"response": [wire.record]} if wire is not None else {}
    http = httpx2.AsyncClient(
        headers={"Authorization": f"Bearer {token}"},
        timeout=httpx2.Timeout(30.0),
        event_hooks=hooks,
    )
    async with http:
        async with Client(streamable_http_client(url, http_client=http), mode=mode) as client:
            yield client


@pytest.mark.anyio
async def test_initialize_negotiates_the_newest_version_and_lists_every_tool(url: str) -> None:
    wire = Wire()
    async with connect(url, env("PADDOCK_TOKEN_RW"), wire) as client:
        assert client.protocol_version == "2025-11-25"
        assert client.server_info is not None and client.server_info.name == "paddock-runtime"
        assert client.server_capabilities.tools is not None
        listed = await client.list_tools()
    tools = {t.name: t for t in listed.tools}
    assert set(tools) == READ_TOOLS | WRITE_TOOLS
    for t in tools.values():
        assert t.input_schema["type"] == "object", t.name
        assert t.output_schema is not None and t.output_schema["type"] == "object", t.name
        jsonschema.Draft202012Validator.check_schema(t.input_schema)
        jsonschema.Draft202012Validator.check_schema(t.output_schema)
        a = t.annotations
        assert a is not None and None not in (a.read_only_hint, a.destructive_hint, a.idempotent_hint, a.open_world_hint)
        assert a.read_only_hint == (t.name in READ_TOOLS), t.name
    hybrid = tools["hybrid_search"].input_schema
    assert hybrid["required"] == ["query"]
    assert hybrid["properties"]["limit"]["minimum"] == 1 and hybrid["properties"]["limit"]["maximum"] == 50
    assert set(hybrid["properties"]["weights"]["properties"]) == {"lexical", "vector"}
    assert "filter" in hybrid["properties"]
    assert set(tools["hybrid_search"].output_schema["required"]) >= {"hits", "mode", "degraded"}
    # Leaving the client ends the session: DELETE with the session id, answered 204.
    assert wire.exchanges[-1].method == "DELETE" and wire.exchanges[-1].status == 204


@pytest.mark.anyio
async def test_default_auto_mode_speaks_2026_07_28_statelessly(url: str) -> None:
    # The SDK's default mode probes `server/discover`; a server of the stateless era answers it, and the
    # client then speaks 2026-07-28: no initialize, no session, the envelope on every request.
    wire = Wire()
    async with connect(url, env("PADDOCK_TOKEN_RO"), wire, mode="auto") as client:
        assert client.protocol_version == "2026-07-28"
        listed = await client.list_tools()
        assert {t.name for t in listed.tools} == READ_TOOLS
        result = await client.call_tool("hybrid_search", {"query": "right to be forgotten", "limit": 3})
        assert not result.is_error
        assert "gdpr-art-17" in [h["id"] for h in result.structured_content["hits"]]
        read = await client.read_resource("paddock://documents/gdpr-art-17")
        assert "erasure" in read.contents[0].text.lower()
    methods = [m for m, _ in wire.rpc_methods() if m is not None]
    assert methods[0] == "server/discover" and "initialize" not in methods, methods
    posts = [e for e in wire.exchanges if e.method == "POST"]
    assert all(e.status == 200 for e in posts), [(e.status, e.body[:200]) for e in posts]
    assert not any("mcp-session-id" in e.headers for e in wire.exchanges)
    # The server's side of it: every answer is in the 2026-07-28 shape, which the handshake era never
    # sends (a result type, and the server's identity in `_meta`).
    for e in posts:
        assert e.request_headers["mcp-protocol-version"] == "2026-07-28"
        assert e.request_headers["mcp-method"] == json.loads(e.request_body)["method"]
        result = json.loads(e.body)["result"]
        assert result["resultType"] == "complete", result
        assert result["_meta"]["io.modelcontextprotocol/serverInfo"]["name"] == "paddock-runtime"


@pytest.mark.anyio
@pytest.mark.parametrize("mode,version", [("legacy", "2025-11-25"), ("auto", "2026-07-28")])
async def test_documents_are_resources_in_either_mode(url: str, mode: str, version: str) -> None:
    async with connect(url, env("PADDOCK_TOKEN_RO"), mode=mode) as client:
        assert client.protocol_version == version
        uris = []
        cursor = None
        while True:
            page = await client.list_resources(cursor=cursor)
            uris += [str(r.uri) for r in page.resources]
            cursor = page.next_cursor
            if cursor is None:
                break
        assert "paddock://documents/gdpr-art-17" in uris
        templates = await client.list_resource_templates()
        assert [t.uri_template for t in templates.resource_templates] == ["paddock://documents/{id}"]
        read = await client.read_resource("paddock://documents/gdpr-art-17")
        assert read.contents[0].mime_type == "text/plain"
        assert "erasure" in read.contents[0].text.lower()
        with pytest.raises(MCPError) as missing:
            await client.read_resource("paddock://documents/no-such-document")
        assert missing.value.code == -32602


@pytest.mark.anyio
async def test_another_tenant_cannot_read_acme_documents_as_resources(url: str) -> None:
    for mode in ("legacy", "auto"):
        async with connect(url, env("PADDOCK_TOKEN_OTHER"), mode=mode) as client:
            page = await client.list_resources()
            assert page.resources == []
            with pytest.raises(MCPError) as refused:
                await client.read_resource("paddock://documents/gdpr-art-17")
            assert refused.value.code == -32602


@pytest.mark.anyio
async def test_read_only_token_lists_only_the_read_tools(url: str) -> None:
    async with connect(url, env("PADDOCK_TOKEN_RO")) as client:
        listed = await client.list_tools()
    assert {t.name for t in listed.tools} == READ_TOOLS


@pytest.mark.anyio
async def test_hybrid_search_finds_gdpr_article_17_with_structured_content(url: str) -> None:
    async with connect(url, env("PADDOCK_TOKEN_RO")) as client:
        listed = await client.list_tools()
        schema = next(t.output_schema for t in listed.tools if t.name == "hybrid_search")
        result = await client.call_tool("hybrid_search", {"query": "right to be forgotten", "limit": 5})
    assert result.is_error is False
    sc = result.structured_content
    assert sc is not None
    jsonschema.validate(sc, schema, cls=jsonschema.Draft202012Validator)
    # The same JSON travels as a text block for clients that ignore structuredContent.
    assert [json.loads(c.text) for c in result.content if c.type == "text"] == [sc]
    ids = [h["id"] for h in sc["hits"]]
    assert "gdpr-art-17" in ids, ids
    hit = sc["hits"][ids.index("gdpr-art-17")]
    assert "Article 17" in hit["title"]
    assert hit["lexical"] is not None and hit["lexical"]["rank"] >= 1
    assert sc["hits"] == sorted(sc["hits"], key=lambda h: -h["score"])
    if os.environ.get("PADDOCK_INTEROP_EMBEDDING") == "local":
        assert sc["mode"] == "hybrid" and sc["degraded"] is False
        assert hit["vector"] is not None and hit["vector"]["rank"] >= 1
    else:
        assert sc["mode"] == "lexical"


@pytest.mark.anyio
async def test_invalid_arguments_are_an_error_result_without_structured_content(url: str) -> None:
    async with connect(url, env("PADDOCK_TOKEN_RO")) as client:
        await client.list_tools()
        result = await client.call_tool("hybrid_search", {"query": "gdpr", "limit": 0})
    assert result.is_error is True
    assert result.structured_content is None
    assert "limit" in result.content[0].text


@pytest.mark.anyio
async def test_upsert_with_a_read_only_token_is_refused_and_writes_nothing(url: str) -> None:
    wire = Wire()
    async with connect(url, env("PADDOCK_TOKEN_RO"), wire) as client:
        with pytest.raises(MCPError):
            await client.call_tool("upsert_document", {"id": "interop-ro", "content": "must not be stored"})
    refused = [e for e in wire.exchanges if e.status == 403]
    assert len(refused) == 1
    response = httpx2.Response(403, headers=refused[0].headers)
    assert extract_scope_from_www_auth(response) == "documents:write"
    assert 'error="insufficient_scope"' in refused[0].headers["www-authenticate"]

    async with connect(url, env("PADDOCK_TOKEN_RW")) as client:
        await client.list_tools()
        got = await client.call_tool("get_document", {"id": "interop-ro"})
    assert got.is_error is True


@pytest.mark.anyio
async def test_untrusted_token_gets_401_with_a_discoverable_resource_metadata_url(url: str) -> None:
    wire = Wire()
    with pytest.raises(Exception) as caught:  # noqa: PT011 - the SDK may wrap the error in a group
        async with connect(url, env("PADDOCK_TOKEN_UNTRUSTED"), wire):
            pass
    assert not isinstance(caught.value, AssertionError)
    assert wire.exchanges and {e.status for e in wire.exchanges} == {401}
    challenge = httpx2.Response(401, headers=wire.exchanges[0].headers)
    assert 'error="invalid_token"' in wire.exchanges[0].headers["www-authenticate"]
    metadata_url = extract_resource_metadata_from_www_auth(challenge)
    assert metadata_url is not None

    # The SDK's OAuth discovery accepts the metadata, and it names exactly the URL clients connect to.
    async with httpx2.AsyncClient() as http:
        served = await http.get(metadata_url)
        metadata = await handle_protected_resource_response(served)
    assert metadata is not None, served.text
    assert str(metadata.resource) == url
    assert metadata.authorization_servers


@pytest.mark.anyio
async def test_another_tenant_finds_nothing_of_acme(url: str) -> None:
    async with connect(url, env("PADDOCK_TOKEN_OTHER")) as client:
        await client.list_tools()
        result = await client.call_tool("hybrid_search", {"query": "right to be forgotten", "limit": 50})
        got = await client.call_tool("get_document", {"id": "gdpr-art-17"})
    assert result.is_error is False
    assert result.structured_content is not None and result.structured_content["hits"] == []
    assert got.is_error is True
