"""Message Batches through the official SDK: create, retrieve, list, cancel, results, delete."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import anthropic
import pytest
from anthropic.types.messages import (
    MessageBatch,
    MessageBatchErroredResult,
    MessageBatchIndividualResponse,
    MessageBatchSucceededResult,
)

from pipeline.simulator import Batches, SimulatorConfig, SimulatorServer, count_request
from tests.conformance.test_sdk import MODEL_ID, make_async_client, make_client, params
from tests.conftest import TEST_MODELS, FakeClock, StartSimulator

pytestmark = pytest.mark.conformance

WALL = 1_700_000_000.0


def start(start_simulator: StartSimulator, clock: FakeClock, **batches: Any) -> SimulatorServer:
    config = SimulatorConfig(models=TEST_MODELS, batches=Batches(**batches))
    return start_simulator(config, clock=clock, wall=lambda: WALL)


def entries(n: int) -> list[dict[str, Any]]:
    return [{"custom_id": f"doc-{i}", "params": params(f"Document {i}.")} for i in range(n)]


def test_create_poll_and_read_results(
    start_simulator: StartSimulator, fake_clock: FakeClock
) -> None:
    server = start(start_simulator, fake_clock, processing_seconds=60)
    sent = entries(3)
    with make_client(server) as sdk:
        batch = sdk.messages.batches.create(requests=sent)
        assert isinstance(batch, MessageBatch)
        assert batch.id.startswith("msgbatch_")
        assert batch.processing_status == "in_progress"
        assert batch.request_counts.processing == 3
        assert batch.created_at == datetime.fromtimestamp(WALL, UTC)
        assert batch.expires_at - batch.created_at == timedelta(hours=24)
        assert batch.results_url is None
        with pytest.raises(anthropic.AnthropicError, match="No `results_url`"):
            sdk.messages.batches.results(batch.id)  # the SDK checks before asking
        fake_clock.advance(60)
        ended = sdk.messages.batches.retrieve(batch.id)
        lines = list(sdk.messages.batches.results(batch.id))
        direct = sdk.messages.create(**sent[0]["params"])
    assert ended.processing_status == "ended"
    assert ended.request_counts.succeeded == 3
    assert ended.ended_at == batch.created_at + timedelta(seconds=60)
    assert all(isinstance(line, MessageBatchIndividualResponse) for line in lines)
    by_id = {line.custom_id: line.result for line in lines}
    assert set(by_id) == {"doc-0", "doc-1", "doc-2"}
    first = by_id["doc-0"]
    assert isinstance(first, MessageBatchSucceededResult)
    assert first.message.model == MODEL_ID
    assert first.message.content == direct.content
    assert first.message.usage.input_tokens == count_request(sent[0]["params"])
    assert first.message.usage.service_tier == "batch"


def test_errored_results_carry_the_error_envelope(
    start_simulator: StartSimulator, fake_clock: FakeClock
) -> None:
    server = start(start_simulator, fake_clock, errored=1.0)
    bad = {k: v for k, v in params().items() if k != "max_tokens"}
    with make_client(server) as sdk:
        batch = sdk.messages.batches.create(
            requests=[*entries(1), {"custom_id": "bad", "params": bad}]
        )
        fake_clock.advance(5)
        by_id = {line.custom_id: line.result for line in sdk.messages.batches.results(batch.id)}
    server_side, invalid = by_id["doc-0"], by_id["bad"]
    assert isinstance(server_side, MessageBatchErroredResult)
    assert server_side.error.error.type == "api_error"
    assert isinstance(invalid, MessageBatchErroredResult)
    assert invalid.error.error.type == "invalid_request_error"
    assert invalid.error.error.message == "max_tokens: Field required"


def test_bad_batch_is_a_bad_request(simulator: SimulatorServer) -> None:
    duplicate = [*entries(1), *entries(1)]
    with make_client(simulator) as sdk, pytest.raises(anthropic.BadRequestError) as caught:
        sdk.messages.batches.create(requests=duplicate)
    assert caught.value.type == "invalid_request_error"
    assert "custom_id must be unique" in (caught.value.api_message or "")


def test_list_paginates_newest_first(
    start_simulator: StartSimulator, fake_clock: FakeClock
) -> None:
    server = start(start_simulator, fake_clock)
    with make_client(server) as sdk:
        made = []
        for _ in range(3):
            made.append(sdk.messages.batches.create(requests=entries(1)).id)
            fake_clock.advance(1)
        page = sdk.messages.batches.list(limit=2)
        assert [b.id for b in page.data] == made[::-1][:2]
        assert page.has_more
        assert [b.id for b in sdk.messages.batches.list(limit=2)] == made[::-1]  # auto-paging


def test_cancel_then_delete(start_simulator: StartSimulator, fake_clock: FakeClock) -> None:
    server = start(start_simulator, fake_clock, processing_seconds=100, cancel_seconds=1)
    with make_client(server) as sdk:
        batch = sdk.messages.batches.create(requests=entries(20))
        with pytest.raises(anthropic.BadRequestError):
            sdk.messages.batches.delete(batch.id)  # still processing
        fake_clock.advance(50)
        canceling = sdk.messages.batches.cancel(batch.id)
        assert canceling.processing_status == "canceling"
        assert canceling.cancel_initiated_at == batch.created_at + timedelta(seconds=50)
        fake_clock.advance(1)
        ended = sdk.messages.batches.retrieve(batch.id)
        kinds = {line.result.type for line in sdk.messages.batches.results(batch.id)}
        deleted = sdk.messages.batches.delete(batch.id)
        with pytest.raises(anthropic.NotFoundError):
            sdk.messages.batches.retrieve(batch.id)
    assert ended.processing_status == "ended"
    assert ended.request_counts.canceled > 0
    assert ended.request_counts.canceled + ended.request_counts.succeeded == 20
    assert kinds == {"succeeded", "canceled"}
    assert (deleted.id, deleted.type) == (batch.id, "message_batch_deleted")


@pytest.mark.anyio
async def test_async_client_reads_results(
    start_simulator: StartSimulator, fake_clock: FakeClock
) -> None:
    server = start(start_simulator, fake_clock)
    async with make_async_client(server) as sdk:
        batch = await sdk.messages.batches.create(requests=entries(2))
        fake_clock.advance(5)
        decoder = await sdk.messages.batches.results(batch.id)
        ids = sorted([line.custom_id async for line in decoder])
    assert ids == ["doc-0", "doc-1"]
