"""The one validation of an OpenAI API request body. Plain Python (no Django): every function takes its limits.

Out-of-range values are refused with a message that names the parameter, never clamped (as the chat socket).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}
MAX_STOP_STRINGS = 16
SEED_MAX = 2**63 - 1


class BadRequest(ValueError):
    def __init__(self, message: str, param: str | None = None, code: str = "invalid_value"):
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code


@dataclass
class ChatRequest:
    model: str
    messages: list = field(default_factory=list)  # [{"role": system|user|assistant, "content": str}]
    stream: bool = False
    include_usage: bool = False
    options: dict = field(default_factory=dict)  # what the worker reads: max_tokens, temperature, stop, ...


def _number(body: dict, name: str, low: float, high: float, *, integer: bool = False):
    value = body.get(name)
    if value is None:
        return None
    kind = "an integer" if integer else "a number"
    if isinstance(value, bool) or not isinstance(value, int | float) or (integer and not isinstance(value, int)):
        raise BadRequest(f"{name} must be {kind} from {low:g} to {high:g}.", name)
    if isinstance(value, float) and not math.isfinite(value) or not low <= value <= high:
        raise BadRequest(f"{name} must be {kind} from {low:g} to {high:g}; got {value!r}.", name)
    return value


def _text(value, name: str, max_chars: int) -> str:
    if not isinstance(value, str):
        raise BadRequest(f"{name} must be a string.", name)
    if "\x00" in value or any(0xD800 <= ord(c) <= 0xDFFF for c in value):
        raise BadRequest(f"{name} holds a NUL character or a lone surrogate.", name)
    if len(value) > max_chars:
        raise BadRequest(f"{name} is longer than {max_chars} characters.", name)
    return value


def _content(value, name: str, max_chars: int) -> str:
    """A message's content: a string, or OpenAI's array of parts, of which only text parts are taken."""
    if isinstance(value, str):
        return _text(value, name, max_chars)
    if isinstance(value, list):
        pieces = []
        for index, part in enumerate(value):
            part_name = f"{name}[{index}]"
            if not isinstance(part, dict) or part.get("type") != "text":
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                raise BadRequest(f"{part_name}: only text parts are supported (got {kind!r}).", part_name)
            pieces.append(_text(part.get("text"), f"{part_name}.text", max_chars))
        return _text("".join(pieces), name, max_chars)
    raise BadRequest(f"{name} must be a string or an array of text parts.", name)


def parse_messages(value, max_chars: int) -> list[dict]:
    if not isinstance(value, list) or not value:
        raise BadRequest("messages must be a non-empty array.", "messages")
    messages = []
    for index, message in enumerate(value):
        name = f"messages[{index}]"
        if not isinstance(message, dict):
            raise BadRequest(f"{name} must be an object.", name)
        role = message.get("role")
        if role not in ROLES:
            raise BadRequest(f"{name}.role must be system, developer, user or assistant; got {role!r}.",
                             f"{name}.role")
        content = message.get("content")
        if content is None and role == "assistant":
            content = ""
        messages.append({"role": ROLES[role], "content": _content(content, f"{name}.content", max_chars)})
    if messages[-1]["role"] == "system":
        raise BadRequest("messages must not end with a system message: nothing to answer.", "messages")
    return messages


def parse_stop(value) -> list[str]:
    if value is None:
        return []
    stops = [value] if isinstance(value, str) else value
    if not isinstance(stops, list) or len(stops) > MAX_STOP_STRINGS or not all(isinstance(s, str) for s in stops):
        raise BadRequest(f"stop must be a string or an array of at most {MAX_STOP_STRINGS} strings.", "stop")
    return [_text(s, "stop", 1000) for s in stops if s]


@dataclass
class CompletionRequest:
    """A /v1/completions request: `prompt` goes to the model as it is (options["prompt"], no chat template).
    `messages` is the prompt as a user's message, only for storing the call as a conversation."""
    model: str
    prompt: str
    echo: bool = False
    stream: bool = False
    include_usage: bool = False
    options: dict = field(default_factory=dict)
    messages: list = field(default_factory=list)


def _model(body) -> str:
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object.")
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise BadRequest("model is required: one of the ids GET /v1/models lists.", "model")
    return model


def parse_chat(body, *, max_tokens: int, max_chars: int) -> ChatRequest:
    """A /v1/chat/completions body -> ChatRequest, or BadRequest naming the parameter."""
    model = _model(body)
    messages = parse_messages(body.get("messages"), max_chars)
    stream, include_usage = _stream_flags(body)
    _one_choice(body)
    if body.get("tools"):
        raise BadRequest("tools are not supported.", "tools")
    options = _sampling(body, max_tokens, default_max_tokens=max_tokens,
                        names=("max_tokens", "max_completion_tokens"))  # max_completion_tokens: OpenAI's newer name
    return ChatRequest(model=model, messages=messages, stream=stream, include_usage=include_usage, options=options)


def parse_completion(body, *, max_tokens: int, max_chars: int, default_max_tokens: int = 16) -> CompletionRequest:
    """A /v1/completions body -> CompletionRequest, or BadRequest naming the parameter. As OpenAI's: max_tokens
    is 16 unless the request says; one prompt (a string, or an array holding one string); echo; no suffix."""
    model = _model(body)
    prompt = body.get("prompt")
    if isinstance(prompt, list):
        if len(prompt) != 1 or not isinstance(prompt[0], str):
            raise BadRequest("prompt must be a string, or an array of one string: this server completes one "
                             "prompt per request, given as text (not token ids).", "prompt")
        prompt = prompt[0]
    if prompt is None:
        raise BadRequest("prompt is required: the text the model continues.", "prompt")
    prompt = _text(prompt, "prompt", max_chars)
    if not prompt:
        raise BadRequest("prompt must not be empty.", "prompt")
    stream, include_usage = _stream_flags(body)
    _one_choice(body)
    best_of = body.get("best_of")
    if best_of is not None and (isinstance(best_of, bool) or best_of != 1):
        raise BadRequest(f"best_of must be 1: this server writes one completion per request; got {best_of!r}.",
                         "best_of")
    if body.get("suffix"):
        raise BadRequest("suffix is not supported.", "suffix")
    echo = body.get("echo")
    if echo is not None and not isinstance(echo, bool):
        raise BadRequest("echo must be true or false.", "echo")
    options = _sampling(body, max_tokens, default_max_tokens=min(default_max_tokens, max_tokens),
                        names=("max_tokens",))
    options["prompt"] = prompt  # the worker's raw-prompt mode (chat/worker/engine.py raw_prompt)
    return CompletionRequest(model=model, prompt=prompt, echo=bool(echo), stream=stream,
                             include_usage=include_usage, options=options,
                             messages=[{"role": "user", "content": prompt}])


def _one_choice(body: dict) -> None:
    n = body.get("n")
    if n is not None and (isinstance(n, bool) or n != 1):
        raise BadRequest(f"n must be 1: this server writes one choice per request; got {n!r}.", "n")
    if body.get("logprobs"):
        raise BadRequest("logprobs are not supported.", "logprobs")


def _stream_flags(body: dict) -> tuple[bool, bool]:
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise BadRequest("stream must be true or false.", "stream")
    stream_options = body.get("stream_options")
    if stream_options is not None and not isinstance(stream_options, dict):
        raise BadRequest("stream_options must be an object.", "stream_options")
    include_usage = (stream_options or {}).get("include_usage")
    if include_usage is not None and not isinstance(include_usage, bool):
        raise BadRequest("stream_options.include_usage must be true or false.", "stream_options.include_usage")
    return bool(stream), bool(include_usage)


def _sampling(body: dict, max_tokens: int, *, default_max_tokens: int, names: tuple[str, ...]) -> dict:
    """The options the worker reads, OpenAI's defaults where the request says nothing."""
    options = {"temperature": 1.0, "top_p": 1.0, "repeat_penalty": 1.0, "max_tokens": default_max_tokens}
    for name in names:
        value = _number(body, name, 1, max_tokens, integer=True)
        if value is not None:
            options["max_tokens"] = value
    for name, low, high, integer in (("temperature", 0, 2, False), ("top_p", 0, 1, False),
                                     ("presence_penalty", -2, 2, False), ("frequency_penalty", -2, 2, False),
                                     ("seed", -SEED_MAX - 1, SEED_MAX, True),
                                     # llama-server's extensions, with the chat's ranges
                                     ("top_k", 0, 1000, True), ("min_p", 0, 1, False),
                                     ("repeat_penalty", 0.5, 2.5, False)):
        value = _number(body, name, low, high, integer=integer)
        if value is not None:
            options[name] = value
    if "seed" in options:
        options["seed"] = options["seed"] & 0xFFFFFFFF  # llama.cpp's seeds are 32 bits
    stops = parse_stop(body.get("stop"))
    if stops:
        options["stop"] = stops
    return options
