"""The validation of /v1/completions bodies: one text prompt, OpenAI's default of 16 tokens, the chat's sampling
parameters; what is refused names its parameter."""

import pytest

from chat.openai_api.params import BadRequest, parse_completion

LIMITS = {"max_tokens": 4096, "max_chars": 1000}
BASE = {"model": "m.gguf", "prompt": "Once upon a time"}


def parse(**changes):
    return parse_completion({**BASE, **changes}, **LIMITS)


def test_the_prompt_goes_to_the_worker_as_it_is_with_every_listed_parameter():
    request = parse(stream=True, stream_options={"include_usage": True}, max_tokens=7, temperature=0.5, top_p=0.9,
                    stop="\n", seed=42, echo=True, n=1, best_of=1, presence_penalty=0.5)
    assert request.stream and request.include_usage and request.echo
    assert request.prompt == "Once upon a time"
    assert request.options == {"prompt": "Once upon a time", "max_tokens": 7, "temperature": 0.5, "top_p": 0.9,
                               "stop": ["\n"], "seed": 42, "presence_penalty": 0.5, "repeat_penalty": 1.0}
    # Only to store the call as a conversation, if its key says so; the worker reads options["prompt"].
    assert request.messages == [{"role": "user", "content": "Once upon a time"}]


def test_max_tokens_is_16_unless_asked_as_openai_and_an_array_of_one_prompt_is_taken():
    request = parse(prompt=["  raw <|im_start|> text\n"])
    assert request.options["max_tokens"] == 16 and not request.stream and not request.echo
    assert request.options["prompt"] == "  raw <|im_start|> text\n"  # not stripped, not escaped
    assert parse_completion({**BASE}, max_tokens=8, max_chars=1000).options["max_tokens"] == 8  # the site's cap


@pytest.mark.parametrize(("changes", "param"), [
    ({"prompt": None}, "prompt"), ({"prompt": ""}, "prompt"), ({"prompt": ["a", "b"]}, "prompt"),
    ({"prompt": [1, 2, 3]}, "prompt"), ({"prompt": 5}, "prompt"), ({"prompt": "x" * 1001}, "prompt"),
    ({"prompt": "a\x00b"}, "prompt"), ({"n": 2}, "n"), ({"best_of": 3}, "best_of"), ({"suffix": "end"}, "suffix"),
    ({"echo": "yes"}, "echo"), ({"logprobs": 2}, "logprobs"), ({"max_tokens": 0}, "max_tokens"),
    ({"max_tokens": 4097}, "max_tokens"), ({"temperature": -1}, "temperature"), ({"top_p": 1.5}, "top_p"),
    ({"stop": [1]}, "stop"), ({"seed": 1.5}, "seed"), ({"stream": "true"}, "stream"), ({"model": ""}, "model"),
])
def test_it_refuses_bad_parameters_by_name(changes, param):
    with pytest.raises(BadRequest) as raised:
        parse(**changes)
    assert raised.value.param == param and raised.value.message


def test_a_body_that_is_not_an_object_is_refused():
    with pytest.raises(BadRequest):
        parse_completion(["prompt"], **LIMITS)
