"""The local route's sampling and its text-level stop (pure: no model)."""

from __future__ import annotations

import pytest

from mezzo.providers.local_sampling import Sampling, TextStop


def feed_all(stop: TextStop, pieces: list[str]) -> str:
    shown = []
    for piece in pieces:
        shown.append(stop.feed(piece))
        if stop.done:
            break
    return "".join(shown)


@pytest.mark.parametrize(
    ("pieces", "shown", "done"),
    [
        (["Paris", " is", " the", " capital."], "Paris is the capital.", False),
        (["Paris.", "<|im", "_end", "|>", "\nuser"], "Paris.", True),
        (["Paris.<|im_end|>more"], "Paris.", True),
        (["a <", "b"], "a <b", False),  # held back while it could start the marker, then shown
        (["x<|im_e", "nd|"], "x", False),  # still held at the end: flush gives it back
    ],
)
def test_text_stop_never_shows_the_marker(pieces: list[str], shown: str, done: bool) -> None:
    stop = TextStop("<|im_end|>")
    assert feed_all(stop, pieces) == shown
    assert stop.done is done


def test_what_is_held_back_is_flushed_at_the_end() -> None:
    stop = TextStop("<end_of_turn>")
    assert stop.feed("answer <end") == "answer "
    assert stop.flush() == "<end"
    assert stop.flush() == ""


def test_the_route_cap_binds_every_request() -> None:
    sampling = Sampling(max_output_tokens=512)
    assert sampling.output_cap(None) == 512
    assert sampling.output_cap(100) == 100
    assert sampling.output_cap(4096) == 512  # the governor's generous default is capped


def test_free_text_is_penalised_for_repeating_grammar_output_is_not() -> None:
    sampling = Sampling(temperature=0.2, repeat_penalty=1.2)
    assert sampling.text(None)["repeat_penalty"] == 1.2
    assert sampling.text(None)["temp"] == 0.2
    assert sampling.text(0.0)["temp"] == 0.0  # a request's temperature wins
    assert sampling.constrained(None) == {"temp": 0.0, "repeat_penalty": 1.0}
