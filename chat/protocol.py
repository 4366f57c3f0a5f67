"""The chat WebSocket's frames: parsing and validation in one place.

README.md ("The WebSocket protocol") documents them.

`parse(text)` turns one text frame into a command object or raises ProtocolError(code, message), whose
message a person can read; the consumer answers it with an `error` frame and keeps the connection open.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from django.conf import settings

MAX_CONTENT_CHARS = 100_000
MAX_SYSTEM_CHARS = 20_000
MAX_FRAME_CHARS = 256_000
DEFAULT_MAX_TOKENS_CAP = 4096


def max_tokens_cap() -> int:
    return int(getattr(settings, "LLMSITE_MAX_TOKENS", DEFAULT_MAX_TOKENS_CAP))


def max_content_chars() -> int:
    return int(getattr(settings, "LLMSITE_MAX_MESSAGE_CHARS", MAX_CONTENT_CHARS))


def max_frame_chars() -> int:
    return int(getattr(settings, "LLMSITE_MAX_FRAME_CHARS", MAX_FRAME_CHARS))


class ProtocolError(Exception):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message

    def frame(self) -> dict:
        return error_frame(self.code, self.message)


def error_frame(code: str, message: str) -> dict:
    return {"type": "error", "code": code, "message": message}


@dataclass(frozen=True)
class Send:
    conversation: int | None
    content: str
    options: dict = field(default_factory=dict)
    model: str | None = None  # the model file a new conversation is written by (ignored once it has begun)


@dataclass(frozen=True)
class Stop:
    message: int | None = None


@dataclass(frozen=True)
class Resume:
    message: int


@dataclass(frozen=True)
class Regenerate:
    message: int
    options: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Edit:
    message: int
    content: str
    options: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Continue:
    message: int
    options: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Version:
    message: int
    version: int


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return (isinstance(value, int | float) and not isinstance(value, bool)) and value == value  # not NaN


def _id(frame: dict, name: str, *, nullable: bool = False, required: bool = True):
    if name not in frame:
        if required:
            raise ProtocolError("invalid_field", f"`{name}` is missing.")
        return None
    value = frame[name]
    if value is None and nullable:
        return None
    if not _is_int(value) or value < 1:
        kind = "a positive integer id or null" if nullable else "a positive integer id"
        raise ProtocolError("invalid_field", f"`{name}` must be {kind}.")
    return value


def _content(frame: dict) -> str:
    value = frame.get("content")
    if not isinstance(value, str):
        raise ProtocolError("invalid_field", "`content` must be a string.")
    if not value.strip():
        raise ProtocolError("invalid_field", "`content` is empty: write a message first.")
    limit = max_content_chars()
    if len(value) > limit:
        raise ProtocolError("invalid_field", f"`content` is too long (at most {limit} characters).")
    _refuse_nul("content", value)
    return value


MAX_MODEL_CHARS = 255


def _model(frame: dict) -> str | None:
    value = frame.get("model")
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > MAX_MODEL_CHARS:
        raise ProtocolError("invalid_field", f"`model` must be a model file name of 1 to {MAX_MODEL_CHARS} "
                                             "characters, or null.")
    _refuse_nul("model", value)
    return value


def _is_unicode(text: str) -> bool:
    """False for a string holding a lone surrogate (JSON's "\\ud800"): no database, and no UTF-8 frame, takes it."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _printable(name: str) -> str:
    return name.encode("utf-8", "backslashreplace").decode("ascii", "replace")[:60]


def _refuse_lone_surrogates(frame: dict) -> None:
    """Refuse a frame with a lone surrogate in any key or string, naming where (`content`, `options.system`)."""
    pending: list[tuple[str, object]] = [("", frame)]
    while pending:  # a loop, not recursion: json.loads already bounded the depth, this adds nothing to it
        path, value = pending.pop()
        if isinstance(value, str):
            bad = not _is_unicode(value)
        elif isinstance(value, dict):
            bad = False
            for key, item in value.items():
                name = f"{path}.{key}" if path else key
                if not _is_unicode(key):
                    path, bad = name, True
                    break
                pending.append((name, item))
        else:
            bad = False
            if isinstance(value, list):
                pending.extend((path, item) for item in value)
        if bad:
            raise ProtocolError("invalid_field", f"`{_printable(path)}` holds a lone surrogate (such as \\ud800), "
                                                 "which is not text: send valid Unicode.")


def _refuse_nul(name: str, value: str) -> None:
    # As Django's form fields do: a NUL character cannot be stored in PostgreSQL text at all.
    if "\x00" in value:
        raise ProtocolError("invalid_field", f"`{name}` must not contain NUL characters.")


# name: (kind, low, high); kind "number" accepts ints and floats, "int" only integers.
NUMBER_OPTIONS = {
    "temperature": ("number", 0.0, 5.0),
    "top_p": ("number", 0.0, 1.0),
    "min_p": ("number", 0.0, 1.0),
    "repeat_penalty": ("number", 0.5, 2.5),
    "top_k": ("int", 0, 1000),
    "seed": ("int", 0, 2**32 - 1),
}


def parse_options(raw) -> dict:
    """Validated sampling options. Missing ones are left out (the worker's defaults apply)."""
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ProtocolError("invalid_field", "`options` must be an object.")
    options = {}
    for name, value in raw.items():
        if name in NUMBER_OPTIONS:
            if value is None:
                continue
            kind, low, high = NUMBER_OPTIONS[name]
            ok = _is_int(value) if kind == "int" else _is_number(value)
            if not ok or not low <= value <= high:
                what = "a whole number" if kind == "int" else "a number"
                raise ProtocolError("invalid_field", f"`options.{name}` must be {what} from {low} to {high}.")
            options[name] = value
        elif name == "max_tokens":
            if value is None:
                continue
            cap = max_tokens_cap()
            if not _is_int(value) or not 1 <= value <= cap:
                raise ProtocolError("invalid_field", f"`options.max_tokens` must be a whole number from 1 to {cap}.")
            options[name] = value
        elif name == "system":
            if value is None:
                continue
            if not isinstance(value, str):
                raise ProtocolError("invalid_field", "`options.system` must be a string.")
            if len(value) > MAX_SYSTEM_CHARS:
                raise ProtocolError(
                    "invalid_field", f"`options.system` is too long (at most {MAX_SYSTEM_CHARS} characters)."
                )
            _refuse_nul("options.system", value)
            options[name] = value
        else:
            raise ProtocolError("invalid_field", f"Unknown option `{name}`.")
    return options


def parse(text) -> Send | Stop | Resume | Regenerate | Edit | Continue | Version:
    if not isinstance(text, str):
        raise ProtocolError("invalid_frame", "Frames must be JSON text, not binary.")
    limit = max_frame_chars()
    if len(text) > limit:
        raise ProtocolError("invalid_frame", f"The frame is too large (at most {limit} characters).")
    try:
        frame = json.loads(text)
    except (ValueError, RecursionError):
        raise ProtocolError("invalid_json", "The frame is not valid JSON.") from None
    if not isinstance(frame, dict):
        raise ProtocolError("invalid_frame", "A frame must be a JSON object with a `type`.")
    if "\\u" in text or not _is_unicode(text):  # daphne's text is valid UTF-8: then only an escape can make one
        _refuse_lone_surrogates(frame)
    kind = frame.get("type")
    if not isinstance(kind, str):
        raise ProtocolError("invalid_frame", "A frame must have a string `type`.")
    if kind == "send":
        regenerate = frame.get("regenerate", False)
        if not isinstance(regenerate, bool):
            raise ProtocolError("invalid_field", "`regenerate` must be true or false.")
        if regenerate:  # {"type": "send", "regenerate": true, "message": id}: the same as "regenerate"
            return Regenerate(message=_id(frame, "message"), options=parse_options(frame.get("options")))
        return Send(conversation=_id(frame, "conversation", nullable=True, required=False),
                    content=_content(frame), options=parse_options(frame.get("options")), model=_model(frame))
    if kind == "stop":
        return Stop(message=_id(frame, "message", nullable=True, required=False))
    if kind == "resume":
        return Resume(message=_id(frame, "message"))
    if kind == "regenerate":
        return Regenerate(message=_id(frame, "message"), options=parse_options(frame.get("options")))
    if kind == "edit":
        return Edit(message=_id(frame, "message"), content=_content(frame), options=parse_options(frame.get("options")))
    if kind == "continue":
        return Continue(message=_id(frame, "message"), options=parse_options(frame.get("options")))
    if kind == "version":
        version = frame.get("version")
        if not _is_int(version) or version < 1:
            raise ProtocolError("invalid_field", "`version` must be a whole number from 1.")
        return Version(message=_id(frame, "message"), version=version)
    raise ProtocolError("unknown_type", f"Unknown frame type {kind[:40]!r}: use send, stop, resume, regenerate, edit, "
                                        "continue, version.")


# --- server frames -------------------------------------------------------------------------------------------
def accepted(conversation: int, message: int, user_message: int | None = None, **extra) -> dict:
    """`message` is the assistant reply; `user_message`, after a `send` or `edit`, the question it stored.
    `extra`: `title` (the conversation's), `version` and `versions` (of the turn a regenerate or edit added to),
    `continued` (after a `continue`: the length of the text the reply already had), `model` (the model file that
    writes the reply)."""
    frame = {"type": "accepted", "conversation": conversation, "message": message}
    if user_message is not None:
        frame["user_message"] = user_message
    frame.update({key: value for key, value in extra.items() if value is not None})
    return frame


def path(conversation: int, messages: list[dict]) -> dict:
    """The conversation as shown after a `version`: every message of the selected path, first to last."""
    return {"type": "path", "conversation": conversation, "messages": messages}


def queued(message: int, position: int, model: str | None = None, progress: float | None = None) -> dict:
    """A reply waiting its turn; with `model` and `progress`, waiting for that model to load (0 to 1)."""
    frame = {"type": "queued", "message": message, "position": position}
    if model and progress is not None:
        frame.update(model=model, progress=progress)
    return frame


def token(message: int, text: str) -> dict:
    return {"type": "token", "message": message, "text": text}


def done(message: int, status: str, stats: dict, finish_reason: str = "") -> dict:
    """`finish_reason` "length": the reply reached `max_tokens` (or the context) and can be continued."""
    return {"type": "done", "message": message, "status": status,
            "finish_reason": "length" if finish_reason == "length" else "stop",
            "stats": {"tokens": stats.get("tokens") or 0, "ttft_ms": stats.get("ttft_ms"),
                      "tokens_per_s": stats.get("tokens_per_s")}}


def reply_error(message: int, code: str, text: str) -> dict:
    return {"type": "error", "code": code, "message": text, "reply": message}


def model(status: dict) -> dict:
    return {"type": "model", "state": status.get("state"), "progress": status.get("progress"),
            "model_file": status.get("model_file"), "model_name": status.get("model_name"),
            "error": status.get("error"),
            "code": status.get("error_code"), "n_gpu_layers": status.get("n_gpu_layers"),
            "n_layers": status.get("n_layers"), "n_ctx": status.get("n_ctx")}
