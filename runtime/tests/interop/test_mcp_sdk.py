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
HANDSHAKE_VERSIONS = {"2025-11-25", "2025-06-18", "2025-03-26"}


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


@dataclass
class Wire:
    """What the SDK's HTTP client sent and received, in order."""

    exchanges: list[Exchange] = field(default_factory=list)

    async def record(self, response: httpx2.Response) -> None:
        req = response.request
        self.exchanges.append(
            Exchange(req.method, response.status_code, response.headers, req.headers, req.content)
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
async def test_default_auto_mode_falls_back_from_the_discover_probe_to_initialize(url: str) -> None:
    # The SDK's default mode probes `server/discover` (the stateless 2026 era) first; a handshake-era
    # server must refuse it so that the client falls back to initialize instead of failing.
    wire = Wire()
    async with connect(url, env("PADDOCK_TOKEN_RO"), wire, mode="auto") as client:
        assert client.protocol_version in HANDSHAKE_VERSIONS
        result = await client.call_tool("hybrid_search", {"query": "right to be forgotten", "limit": 3})
        assert not result.is_error
    methods = wire.rpc_methods()
    assert methods[0][0] == "server/discover"
    assert ("initialize", 200) in methods

    # Replayed byte for byte, the probe gets the plain "method not found" the handshake era answers
    # with, never one of the modern-era codes (-32020..-32022) that would stop the fallback.
    probe = wire.exchanges[0]
    async with httpx2.AsyncClient() as http:
        answer = await http.post(url, content=probe.request_body, headers=probe.request_headers)
    body = answer.json()
    assert body["error"]["code"] == -32601, (answer.status_code, body)


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
