"""Frame parsing and validation (chat/protocol.py): one place decides what a client may send."""

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from chat import protocol
from chat.protocol import Edit, ProtocolError, Regenerate, Resume, Send, Stop, parse


def frame(**fields):
    return json.dumps(fields)


def error_of(text):
    with pytest.raises(ProtocolError) as caught:
        parse(text)
    return caught.value


def test_it_parses_a_send_with_options():
    command = parse(frame(type="send", conversation=None, content="Hi", options={
        "temperature": 0.2, "top_p": 0.9, "top_k": 40, "min_p": 0.05, "repeat_penalty": 1.1,
        "max_tokens": 64, "seed": 1, "system": "Be brief."}))
    assert command == Send(conversation=None, content="Hi", options={
        "temperature": 0.2, "top_p": 0.9, "top_k": 40, "min_p": 0.05, "repeat_penalty": 1.1,
        "max_tokens": 64, "seed": 1, "system": "Be brief."})


def test_it_parses_stop_resume_regenerate_and_edit():
    assert parse(frame(type="stop")) == Stop()
    assert parse(frame(type="stop", message=4)) == Stop(message=4)
    assert parse(frame(type="resume", message=3)) == Resume(message=3)
    assert parse(frame(type="regenerate", message=5)) == Regenerate(message=5)
    assert parse(frame(type="send", regenerate=True, message=5)) == Regenerate(message=5)
    assert parse(frame(type="edit", message=2, content="Again")) == Edit(message=2, content="Again")


def test_it_rejects_text_that_is_not_json():
    assert error_of("{oops").code == "invalid_json"


@pytest.mark.parametrize("text", ["[]", "3", '"send"', "{}", '{"type": 1}'])
def test_it_rejects_a_frame_without_a_string_type(text):
    assert error_of(text).code == "invalid_frame"


def test_it_rejects_an_unknown_type():
    assert error_of(frame(type="shout")).code == "unknown_type"


@pytest.mark.parametrize("fields", [
    {"type": "send", "content": 5},
    {"type": "send", "content": "   "},
    {"type": "send", "content": "hi", "conversation": "1"},
    {"type": "send", "content": "hi", "conversation": True},
    {"type": "send", "content": "hi", "conversation": -3},
    {"type": "send", "content": "hi", "options": []},
    {"type": "send", "content": "hi", "options": {"colour": "red"}},
    {"type": "resume"},
    {"type": "resume", "message": 1.5},
    {"type": "edit", "message": 1},
])
def test_it_rejects_fields_of_the_wrong_type(fields):
    assert error_of(json.dumps(fields)).code == "invalid_field"


@pytest.mark.parametrize("name, value", [
    ("temperature", 5.1), ("temperature", -0.1), ("temperature", "hot"), ("temperature", True),
    ("top_p", 1.5), ("min_p", -1), ("top_k", 2.5), ("top_k", -1), ("repeat_penalty", 9),
    ("max_tokens", 0), ("max_tokens", 10**9), ("max_tokens", 1.0), ("seed", -1), ("system", 3),
])
def test_it_rejects_options_out_of_range_naming_the_option(name, value):
    error = error_of(frame(type="send", content="hi", options={name: value}))
    assert error.code == "invalid_field" and f"options.{name}" in error.message


def test_max_tokens_is_capped_by_the_setting(settings):
    settings.LLMSITE_MAX_TOKENS = 100
    assert parse(frame(type="send", content="hi", options={"max_tokens": 100})).options == {"max_tokens": 100}
    assert "1 to 100" in error_of(frame(type="send", content="hi", options={"max_tokens": 101})).message


def test_the_error_frame_has_a_code_and_a_readable_message():
    assert error_of("nope").frame() == {"type": "error", "code": "invalid_json",
                                        "message": "The frame is not valid JSON."}


def test_done_frames_carry_the_three_stats():
    assert protocol.done(7, "stopped", {"tokens": 3, "ttft_ms": 12.5, "tokens_per_s": 99.0, "prompt_tokens": 9}) == {
        "type": "done", "message": 7, "status": "stopped", "finish_reason": "stop",
        "stats": {"tokens": 3, "ttft_ms": 12.5, "tokens_per_s": 99.0}}


def test_done_frames_say_when_a_reply_stopped_at_the_length_limit():
    assert protocol.done(7, "complete", {"tokens": 8}, "length")["finish_reason"] == "length"


def test_it_parses_continue_and_version():
    from chat.protocol import Continue, Version

    assert parse(frame(type="continue", message=5, options={"max_tokens": 9})) == Continue(5, {"max_tokens": 9})
    assert parse(frame(type="version", message=5, version=2)) == Version(5, 2)
    for bad in (0, -1, "2", None, 1.5, True):
        assert error_of(frame(type="version", message=5, version=bad)).code == "invalid_field"
    assert error_of(frame(type="continue")).code == "invalid_field"


@given(st.one_of(st.text(max_size=200), st.binary(max_size=50),
                 st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=10),
                              lambda children: st.lists(children, max_size=4)
                              | st.dictionaries(st.sampled_from(["type", "content", "conversation", "message",
                                                                 "options", "regenerate", "max_tokens"]),
                                                children, max_size=5),
                              max_leaves=12).map(json.dumps)))
def test_any_frame_either_parses_or_gets_a_protocol_error(text):
    try:
        parse(text)
    except ProtocolError as error:
        assert error.code in {"invalid_json", "invalid_frame", "unknown_type", "invalid_field"}
        assert error.message


@pytest.mark.parametrize("frame", [
    {"type": "send", "conversation": None, "content": "a\x00b"},
    {"type": "send", "conversation": None, "content": "hi", "options": {"system": "be\x00nice"}},
])
def test_it_refuses_nul_characters_which_postgresql_cannot_store(frame):
    with pytest.raises(ProtocolError) as caught:
        parse(json.dumps(frame))
    assert caught.value.code == "invalid_field" and "NUL" in str(caught.value)
