"""POST /v1/embeddings through the real handler: every adapter against a fake speaking its
vendor's wire format, metering on DynamoDB Local, and the mock's deterministic vectors."""

from __future__ import annotations

import base64
import struct

import pytest

from aigw import catalog, clock
from aigw.config import settings
from aigw.usage import records as usage_records
from tests.helpers.apigw import call
from tests.helpers.fake_vendors import VendorServer, openai_error

ROUTE = "/v1/embeddings"
# One model per adapter, with the path its request must reach.
MODELS = {
    "openai/text-embedding-3-small": "/openai/v1/embeddings",
    "azure/text-embedding-3-small": (
        "/azure/openai/deployments/text-embedding-3-small/embeddings?api-version=2024-10-21"
    ),
    "mistral/mistral-embed": "/mistral/v1/embeddings",
    "gemini/gemini-embedding-001": "/gemini/v1beta/models/gemini-embedding-001:batchEmbedContents",
    "bedrock/cohere-embed-english-v3": "/bedrock/model/cohere.embed-english-v3/invoke",
}


def _records() -> list[usage_records.UsageRecord]:
    return usage_records.records_for_day("acme", clock.iso(clock.now())[:10])


@pytest.mark.parametrize("model", list(MODELS))
def test_each_vendor_embeds_a_batch_in_openai_shape_and_is_metered(
    vendors: VendorServer, key: str, model: str
) -> None:
    reply = call("POST", ROUTE, body={"model": model, "input": ["one two", "three"]}, key=key)
    assert reply.status == 200, reply.body
    assert vendors.paths() == [MODELS[model]]
    body = reply.json()
    assert body["object"] == "list"
    assert body["model"] == model
    assert [row["index"] for row in body["data"]] == [0, 1]
    # The fakes put the input's length first: the order of the inputs is kept.
    assert [row["embedding"][0] for row in body["data"]] == [7.0, 5.0]
    (record,) = _records()
    assert (record.model, record.route, record.status, record.completion_tokens) == (model, ROUTE, 200, 0)
    assert body["usage"] == {"prompt_tokens": record.prompt_tokens, "total_tokens": record.prompt_tokens}
    if model.startswith("gemini/"):
        assert record.usage_source == "estimate"  # Gemini reports no count
    else:
        assert (record.usage_source, record.prompt_tokens) == ("provider", 3)
    assert record.cost_micro_usd > 0


def test_bedrock_titan_is_one_call_per_input_with_its_dimensions(vendors: VendorServer, key: str) -> None:
    body = {"model": "bedrock/titan-embed-text-v2", "input": ["a b", "c"], "dimensions": 256}
    reply = call("POST", ROUTE, body=body, key=key)
    assert reply.status == 200, reply.body
    assert vendors.paths() == ["/bedrock/model/amazon.titan-embed-text-v2%3A0/invoke"] * 2
    assert [r.json()["dimensions"] for r in vendors.requests] == [256, 256]
    assert [len(row["embedding"]) for row in reply.json()["data"]] == [256, 256]
    assert reply.json()["usage"]["prompt_tokens"] == 3


def test_dimensions_reach_openai_and_mistral_in_their_own_fields(vendors: VendorServer, key: str) -> None:
    call(
        "POST", ROUTE, body={"model": "openai/text-embedding-3-small", "input": "x", "dimensions": 8}, key=key
    )
    assert vendors.requests[-1].json()["dimensions"] == 8
    reply = call(
        "POST", ROUTE, body={"model": "mistral/mistral-embed", "input": "x", "dimensions": 8}, key=key
    )
    assert reply.status == 400  # mistral-embed has one size
    assert reply.json()["error"]["param"] == "dimensions"


def test_token_arrays_go_to_openai_and_are_refused_where_the_vendor_takes_text(
    vendors: VendorServer, key: str
) -> None:
    reply = call(
        "POST", ROUTE, body={"model": "openai/text-embedding-3-small", "input": [[1, 2, 3]]}, key=key
    )
    assert reply.status == 200, reply.body
    assert vendors.requests[-1].json()["input"] == [[1, 2, 3]]
    vendors.reset()
    refused = call("POST", ROUTE, body={"model": "gemini/gemini-embedding-001", "input": [1, 2]}, key=key)
    assert refused.status == 400
    assert refused.json()["error"]["param"] == "input"
    assert vendors.paths() == []


def test_base64_is_little_endian_float32(key: str) -> None:
    body = {"model": "mock/embed", "input": "hello", "dimensions": 16}
    floats = call("POST", ROUTE, body=body, key=key).json()["data"][0]["embedding"]
    packed = call("POST", ROUTE, body={**body, "encoding_format": "base64"}, key=key).json()["data"][0][
        "embedding"
    ]
    decoded = struct.unpack("<16f", base64.b64decode(packed))
    assert decoded == pytest.approx(floats, abs=1e-6)


def test_mock_embed_is_deterministic_unit_vectors(key: str) -> None:
    def embed(text: str) -> list[float]:
        reply = call("POST", ROUTE, body={"model": "mock/embed", "input": text}, key=key)
        assert reply.status == 200, reply.body
        vector: list[float] = reply.json()["data"][0]["embedding"]
        return vector

    first, again, other = embed("the cat"), embed("the cat"), embed("the dog")
    assert first == again != other
    assert len(first) == 1536
    assert sum(v * v for v in first) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize(
    ("body", "param"),
    [
        ({"model": "mock/embed"}, "input"),
        ({"model": "mock/embed", "input": ""}, "input"),
        ({"model": "mock/embed", "input": []}, "input"),
        ({"model": "mock/embed", "input": "x", "encoding_format": "hex"}, "encoding_format"),
        ({"model": "mock/embed", "input": "x", "dimensions": 0}, "dimensions"),
        ({"model": "mock/echo", "input": "x"}, "model"),
    ],
)
def test_bad_input_is_a_400_naming_the_field(key: str, body: dict[str, object], param: str) -> None:
    reply = call("POST", ROUTE, body=body, key=key)
    assert reply.status == 400, reply.body
    assert reply.json()["error"]["param"] == param
    assert _records() == []


def test_chat_refuses_an_embedding_model(key: str) -> None:
    body = {"model": "mock/embed", "messages": [{"role": "user", "content": "hi"}]}
    reply = call("POST", "/v1/chat/completions", body=body, key=key)
    assert reply.status == 400
    assert "/v1/embeddings" in reply.json()["error"]["message"]


def test_a_vendor_failure_is_metered_as_failed_and_not_billed(vendors: VendorServer, key: str) -> None:
    vendors.script.failures = [openai_error(400, "bad input")]
    reply = call("POST", ROUTE, body={"model": "openai/text-embedding-3-small", "input": "x"}, key=key)
    assert reply.status == 400
    (record,) = _records()
    assert (record.status, record.cost_micro_usd) == (400, 0)


def test_a_fallback_answers_only_with_vectors_of_the_same_size(vendors: VendorServer, key: str) -> None:
    # 1536-dimension vectors first; Titan answers 1024: never in their place, however the alias
    # is set up. mock/embed answers 1536 too and may stand in.
    catalog.put_alias(
        "embed-any", ["openai/text-embedding-3-small", "bedrock/titan-embed-text-v2", "mock/embed"]
    )
    tries = settings().upstream_max_retries + 1
    vendors.script.failures = [openai_error(503, "overloaded")] * tries  # OpenAI's, with retries
    reply = call("POST", ROUTE, body={"model": "embed-any", "input": "x"}, key=key)
    assert reply.status == 200, reply.body
    assert vendors.paths() == ["/openai/v1/embeddings"] * tries  # and never Bedrock's
    assert len(reply.json()["data"][0]["embedding"]) == 1536


@pytest.mark.parametrize(
    ("model", "batch"), [("gemini/gemini-embedding-001", 100), ("bedrock/cohere-embed-english-v3", 96)]
)
def test_a_large_batch_goes_in_the_vendors_batch_size(
    vendors: VendorServer, key: str, model: str, batch: int
) -> None:
    texts = [f"text {n}" for n in range(batch + 5)]
    reply = call("POST", ROUTE, body={"model": model, "input": texts}, key=key)
    assert reply.status == 200, reply.body
    assert len(vendors.paths()) == 2  # a full batch, then the rest
    assert [len(r.json().get("requests") or r.json().get("texts")) for r in vendors.requests] == [batch, 5]
    assert [row["index"] for row in reply.json()["data"]] == list(range(batch + 5))
    assert [row["embedding"][0] for row in reply.json()["data"]] == [float(len(t)) for t in texts]
