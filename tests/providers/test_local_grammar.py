"""Output plans of the local model: shapes, grammars and parsing (no inference)."""

from __future__ import annotations

import pytest

pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (extra mezzo[local])")

from mezzo.providers.base import ToolSpec
from mezzo.providers.grammar import MAX_ARRAY_ITEMS, GrammarError, OutputError, plan_output

WEATHER = ToolSpec(
    "get_weather",
    "Weather for a city.",
    {
        "type": "object",
        "properties": {"city": {"type": "string"}, "days": {"type": "integer", "minimum": 1}},
        "required": ["city"],
    },
)
NOTE = ToolSpec(
    "note",
    "Keep a note.",
    {"type": "object", "properties": {"lines": {"type": "array", "items": {"type": "string"}}}},
)


@pytest.mark.parametrize(
    ("tools", "tool_choice", "schema", "shape"),
    [
        ((), "auto", None, "text"),
        ((WEATHER,), "none", None, "text"),
        ((), "auto", {"type": "integer"}, "json"),
        ((WEATHER, NOTE), "note", None, "arguments"),
        ((WEATHER, NOTE), "required", None, "call"),
        ((WEATHER, NOTE), "auto", None, "call_or_answer"),
    ],
)
def test_shape_follows_tools_and_tool_choice(
    tools: tuple[ToolSpec, ...], tool_choice: str, schema: dict | None, shape: str
) -> None:
    plan = plan_output(tools, tool_choice, schema)
    assert plan.shape == shape
    grammar = plan.grammar or plan.call_grammar
    assert (grammar is None) == (shape == "text")
    if grammar is not None:
        assert grammar.startswith("root ::=") or "\nroot ::=" in grammar


def test_forced_call_parses_arguments_and_validates_them() -> None:
    plan = plan_output((WEATHER,), "get_weather", None)

    (call,) = plan.parse('{"city": "Oslo", "days": 2}').tool_calls
    assert (call.name, call.arguments) == ("get_weather", {"city": "Oslo", "days": 2})
    with pytest.raises(OutputError, match="days"):
        plan.parse('{"city": "Oslo", "days": 0}')
    with pytest.raises(OutputError, match="not complete JSON"):
        plan.parse('{"city": "Os')


def test_auto_tells_a_call_from_an_answer() -> None:
    plan = plan_output((WEATHER, NOTE), "auto", None)

    answer = plan.parse("It is sunny.")
    assert (answer.text, answer.tool_calls) == ("It is sunny.", ())
    (call,) = plan.parse('{"name": "note", "arguments": {"lines": ["a"]}}').tool_calls
    assert call.name == "note" and call.arguments == {"lines": ["a"]}
    with pytest.raises(OutputError, match="not a call of an offered tool"):
        plan.parse('{"name": "delete_everything", "arguments": {}}')


def test_unbounded_arrays_are_bounded_in_the_grammar_only() -> None:
    plan = plan_output((NOTE,), "note", None)
    bounded_lines = {"type": "array", "items": {"type": "string"}, "maxItems": MAX_ARRAY_ITEMS}
    bounded = ToolSpec("note", "", {"type": "object", "properties": {"lines": bounded_lines}})
    assert plan.grammar == plan_output((bounded,), "note", None).grammar
    many = '{"lines": [' + ", ".join(['"x"'] * (MAX_ARRAY_ITEMS + 4)) + "]}"
    # Validation still uses the caller's schema, which has no bound.
    assert len(plan.parse(many).tool_calls[0].arguments["lines"]) == MAX_ARRAY_ITEMS + 4


def test_unknown_tool_choice_names_the_offered_tools() -> None:
    with pytest.raises(GrammarError, match="not one of: get_weather, note"):
        plan_output((WEATHER, NOTE), "send_email", None)
