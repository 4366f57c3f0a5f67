"""The one validation of /v1/chat/completions bodies: what is refused names its parameter; nothing is clamped."""

import pytest

from chat.openai_api.params import BadRequest, parse_chat

LIMITS = {"max_tokens": 4096, "max_chars": 1000}
BASE = {"model": "m.gguf", "messages": [{"role": "user", "content": "Hi"}]}


def parse(**changes):
    return parse_chat({**BASE, **changes}, **LIMITS)


def test_it_takes_every_listed_parameter():
    request = parse(stream=True, stream_options={"include_usage": True}, max_tokens=7, temperature=0.5, top_p=0.9,
                    stop=["\n\n", "END"], seed=42, presence_penalty=0.5, frequency_penalty=-0.5, n=1)
    assert request.stream and request.include_usage
    assert request.options == {"max_tokens": 7, "temperature": 0.5, "top_p": 0.9, "stop": ["\n\n", "END"],
                               "seed": 42, "presence_penalty": 0.5, "frequency_penalty": -0.5,
                               "repeat_penalty": 1.0}


def test_max_completion_tokens_is_the_newer_name_and_wins():
    assert parse(max_tokens=5, max_completion_tokens=9).options["max_tokens"] == 9


def test_text_parts_are_joined_and_developer_is_a_system_message():
    request = parse(messages=[{"role": "developer", "content": "Be brief."},
                              {"role": "user", "content": [{"type": "text", "text": "Hel"},
                                                           {"type": "text", "text": "lo"}]},
                              {"role": "assistant", "content": None}, {"role": "user", "content": "Again"}])
    assert request.messages == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"},
                                {"role": "assistant", "content": ""}, {"role": "user", "content": "Again"}]


def test_a_single_stop_string_and_a_negative_seed():
    request = parse(stop="###", seed=-1)
    assert request.options["stop"] == ["###"]
    assert request.options["seed"] == 0xFFFFFFFF


@pytest.mark.parametrize(("changes", "param"), [
    ({"n": 2}, "n"),
    ({"n": True}, "n"),
    ({"temperature": 2.5}, "temperature"),
    ({"temperature": "hot"}, "temperature"),
    ({"top_p": -0.1}, "top_p"),
    ({"max_tokens": 0}, "max_tokens"),
    ({"max_tokens": 4097}, "max_tokens"),
    ({"max_completion_tokens": 1.5}, "max_completion_tokens"),
    ({"presence_penalty": 3}, "presence_penalty"),
    ({"frequency_penalty": float("nan")}, "frequency_penalty"),
    ({"seed": 1.0}, "seed"),
    ({"stop": [1]}, "stop"),
    ({"stop": ["a"] * 17}, "stop"),
    ({"stream": "yes"}, "stream"),
    ({"stream_options": {"include_usage": 1}}, "stream_options.include_usage"),
    ({"model": ""}, "model"),
    ({"messages": []}, "messages"),
    ({"messages": [{"role": "tool", "content": "x"}]}, "messages[0].role"),
    ({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "x"}}]}]},
     "messages[0].content[0]"),
    ({"messages": [{"role": "user", "content": "a\x00b"}]}, "messages[0].content"),
    ({"messages": [{"role": "user", "content": "\ud800"}]}, "messages[0].content"),
    ({"messages": [{"role": "user", "content": "x" * 1001}]}, "messages[0].content"),
    ({"messages": [{"role": "system", "content": "only a system prompt"}]}, "messages"),
    ({"tools": [{"type": "function"}]}, "tools"),
    ({"logprobs": True}, "logprobs"),
])
def test_it_refuses_bad_parameters_by_name(changes, param):
    with pytest.raises(BadRequest) as raised:
        parse(**changes)
    assert raised.value.param == param
    assert raised.value.message


def test_a_body_that_is_not_an_object_is_refused():
    with pytest.raises(BadRequest):
        parse_chat(["not", "an", "object"], **LIMITS)
