"""The official A2A Python SDK (PyPI `a2a-sdk`) against a running paddock-runtime.

Run through `scripts/a2a-interop.sh`, which starts PostgreSQL and the runtime (extractive answers, no model
endpoint), provisions the tenants `acme` (holding examples/documents.jsonl) and `globex` (empty), and passes
the base URL and tokens in the environment. Each test drives the SDK's own client: card resolution, the
JSON-RPC transport for A2A 1.0, and the SDK's 0.3 compatibility transport for the legacy dialect.
"""

from __future__ import annotations

import os
import uuid

import httpx
import pytest
from a2a.client import A2ACardResolver, ClientConfig, ClientFactory
from a2a.types.a2a_pb2 import (
    AgentCard,
    CancelTaskRequest,
    GetTaskRequest,
    ListTasksRequest,
    Message,
    Part,
    Role,
    SendMessageRequest,
    SubscribeToTaskRequest,
    TaskState,
)
from a2a.utils.errors import TaskNotCancelableError, TaskNotFoundError, UnsupportedOperationError
from google.protobuf import json_format, struct_pb2

TERMINAL = {
    TaskState.TASK_STATE_COMPLETED,
    TaskState.TASK_STATE_FAILED,
    TaskState.TASK_STATE_CANCELED,
    TaskState.TASK_STATE_REJECTED,
}
QUESTION = "What must a controller do after a personal data breach?"


def env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        pytest.fail(f"{name} is not set: run these tests through scripts/a2a-interop.sh")
    return value


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def base() -> str:
    return env("PADDOCK_A2A_BASE")


def http(token: str) -> httpx.AsyncClient:
    # Research runs a few steps; the SDK's default 5 s read timeout is for quick calls.
    return httpx.AsyncClient(headers={"Authorization": f"Bearer {token}"}, timeout=httpx.Timeout(60.0))


def request(text: str, skill: str | None = None, **config) -> SendMessageRequest:
    metadata = struct_pb2.Struct()
    if skill:
        metadata.update({"skill": skill})
    msg = Message(message_id=str(uuid.uuid4()), role=Role.ROLE_USER, parts=[Part(text=text)], metadata=metadata)
    req = SendMessageRequest(message=msg)
    for k, v in config.items():
        setattr(req.configuration, k, v)
    return req


async def card_for(client: httpx.AsyncClient, base: str) -> AgentCard:
    return await A2ACardResolver(client, base).get_agent_card()


@pytest.mark.anyio
async def test_the_sdk_resolves_the_agent_card(base: str) -> None:
    async with httpx.AsyncClient(timeout=10) as anonymous:
        card = await card_for(anonymous, base)
    assert card.name
    assert card.capabilities.streaming
    assert not card.capabilities.push_notifications
    assert {s.id for s in card.skills} == {"rag", "research"}
    interfaces = {(i.protocol_binding, i.protocol_version): i.url for i in card.supported_interfaces}
    assert interfaces[("JSONRPC", "1.0")] == f"{base}/a2a"
    assert interfaces[("JSONRPC", "0.3")] == f"{base}/a2a"
    assert card.security_schemes["bearer"].http_auth_security_scheme.bearer_format == "JWT"


@pytest.mark.anyio
async def test_a_research_task_streams_to_completion_and_reads_back(base: str) -> None:
    async with http(env("PADDOCK_A2A_TOKEN")) as h:
        client = ClientFactory(ClientConfig(httpx_client=h, streaming=True)).create(await card_for(h, base))
        events = [e async for e in client.send_message(request(QUESTION, "research"))]
        assert events[0].HasField("task"), "the stream starts with the Task"
        task_id = events[0].task.id
        states = [e.status_update.status.state for e in events if e.HasField("status_update")]
        assert states[-1] == TaskState.TASK_STATE_COMPLETED
        assert all(s == TaskState.TASK_STATE_WORKING for s in states[:-1])
        streamed = [e.artifact_update.artifact.artifact_id for e in events if e.HasField("artifact_update")]
        assert "plan" in streamed and "report" in streamed

        task = await client.get_task(GetTaskRequest(id=task_id))
        assert task.status.state == TaskState.TASK_STATE_COMPLETED
        report = next(a for a in task.artifacts if a.artifact_id == "report")
        text = report.parts[0].text
        assert text.startswith("# Research report") and "## Sources" in text
        data = json_format.MessageToDict(report)["parts"][1]["data"]
        cited = [c["id"] for c in data["citations"]]
        retrieved = set(data["retrieved"])
        assert cited and set(cited) <= retrieved
        for c in cited:
            assert f"[{c}]" in text
        assert task.metadata["cost"] == "0"

        listed = await client.list_tasks(ListTasksRequest(page_size=100))
        assert task_id in {t.id for t in listed.tasks}
        await client.close()


@pytest.mark.anyio
async def test_a_blocking_send_returns_the_finished_task(base: str) -> None:
    async with http(env("PADDOCK_A2A_TOKEN")) as h:
        client = ClientFactory(ClientConfig(httpx_client=h, streaming=False)).create(await card_for(h, base))
        (only,) = [e async for e in client.send_message(request(QUESTION, "rag"))]
        assert only.task.status.state == TaskState.TASK_STATE_COMPLETED
        answer = next(a for a in only.task.artifacts if a.artifact_id == "answer")
        assert "[" in answer.parts[0].text
        # Finished tasks cannot be canceled; unknown ones are not found.
        with pytest.raises(TaskNotCancelableError):
            await client.cancel_task(CancelTaskRequest(id=only.task.id))
        with pytest.raises(TaskNotFoundError):
            await client.get_task(GetTaskRequest(id=str(uuid.uuid4())))
        await client.close()
        # A finished task has nothing left to stream.
        streaming = ClientFactory(ClientConfig(httpx_client=h, streaming=True)).create(await card_for(h, base))
        with pytest.raises(UnsupportedOperationError):
            _ = [e async for e in streaming.subscribe(SubscribeToTaskRequest(id=only.task.id))]
        await streaming.close()


@pytest.mark.anyio
async def test_another_tenant_cannot_see_the_task(base: str) -> None:
    async with http(env("PADDOCK_A2A_TOKEN")) as h:
        client = ClientFactory(ClientConfig(httpx_client=h, streaming=False)).create(await card_for(h, base))
        (only,) = [e async for e in client.send_message(request(QUESTION, "rag"))]
        await client.close()
    async with http(env("PADDOCK_A2A_TOKEN_OTHER")) as h:
        other = ClientFactory(ClientConfig(httpx_client=h, streaming=False)).create(await card_for(h, base))
        with pytest.raises(TaskNotFoundError):
            await other.get_task(GetTaskRequest(id=only.task.id))
        with pytest.raises(TaskNotFoundError):
            await other.cancel_task(CancelTaskRequest(id=only.task.id))
        listed = await other.list_tasks(ListTasksRequest())
        assert only.task.id not in {t.id for t in listed.tasks}
        await other.close()


@pytest.mark.anyio
async def test_the_sdk_0_3_transport_speaks_the_legacy_dialect(base: str) -> None:
    async with http(env("PADDOCK_A2A_TOKEN")) as h:
        card = await card_for(h, base)
        # Keep only the 0.3 interface: the SDK then uses its 0.3 JSON-RPC transport (message/stream, tasks/get)
        # and validates every answer against its 0.3 models.
        legacy = [i for i in card.supported_interfaces if i.protocol_version == "0.3"]
        del card.supported_interfaces[:]
        card.supported_interfaces.extend(legacy)
        client = ClientFactory(ClientConfig(httpx_client=h, streaming=True)).create(card)
        events = [e async for e in client.send_message(request(QUESTION, "rag"))]
        assert events[0].HasField("task")
        final = [e for e in events if e.HasField("status_update")][-1]
        assert final.status_update.status.state == TaskState.TASK_STATE_COMPLETED
        task = await client.get_task(GetTaskRequest(id=events[0].task.id))
        assert task.status.state == TaskState.TASK_STATE_COMPLETED
        assert any(a.artifact_id == "answer" for a in task.artifacts)
        with pytest.raises(TaskNotFoundError):
            await client.get_task(GetTaskRequest(id=str(uuid.uuid4())))
        await client.close()
