"""/v1/: OpenAI's API (models, chat completions, text completions) on this site's queue and workers.

Authenticated by `Authorization: Bearer <key>` only: the session cookie is never read here, so no other site
can make a signed-in browser call the API (no CSRF), and browsers reach it from other origins only where
LLMSITE_API_CORS_ORIGINS lists them. Errors have OpenAI's shape: {"error": {"message", "type", "param", "code"}}.
"""

from __future__ import annotations

import json
import secrets
import time

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from django.conf import settings
from django.http import HttpResponse, JsonResponse, StreamingHttpResponse
from django.views.decorators.csrf import csrf_exempt

from chat import limits, replies, services
from chat.openai_api import keys
from chat.openai_api.generation import Generation, next_job_id
from chat.openai_api.params import BadRequest, parse_chat, parse_completion
from chat.openai_api.reasoning import ReasoningSplitter, split
from chat.worker import get_manager

LIVE_STATES = ("starting", "loading", "ready")
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 404: "not_found_error",
               405: "invalid_request_error", 429: "rate_limit_error", 500: "server_error", 503: "unavailable_error"}
# A reply that fails before its first token answers with the status its cause deserves.
FAILURE_STATUS = {"no_worker": 503, "model_load_failed": 503, "model_not_loaded": 503, "model_unloaded": 503,
                  "worker_unreachable": 503, "worker_stopped": 503, "worker_lost": 503, "worker_died": 503,
                  "context_too_long": 400}


class ApiError(Exception):
    def __init__(self, status: int, message: str, code: str, param: str | None = None, headers: dict | None = None):
        super().__init__(message)
        self.status, self.message, self.code, self.param, self.headers = status, message, code, param, headers or {}

    def response(self, request) -> JsonResponse:
        body = {"error": {"message": self.message, "type": ERROR_TYPES.get(self.status, "server_error"),
                          "param": self.param, "code": self.code}}
        response = JsonResponse(body, status=self.status)
        for name, value in self.headers.items():
            response[name] = value
        return _cors(request, response)


def _cors(request, response):
    origin = request.headers.get("Origin")
    if origin and origin in settings.LLMSITE_API_CORS_ORIGINS:
        response["Access-Control-Allow-Origin"] = origin
        response["Vary"] = "Origin"
    return response


def api_view(methods: tuple[str, ...]):
    """CSRF-exempt (no cookie is read), CORS preflight, method check, ApiError -> OpenAI's error shape."""

    def decorate(view):
        @csrf_exempt
        async def wrapper(request, *args, **kwargs):
            if request.method == "OPTIONS":
                response = _cors(request, HttpResponse(status=204))
                if response.has_header("Access-Control-Allow-Origin"):
                    response["Access-Control-Allow-Methods"] = ", ".join((*methods, "OPTIONS"))
                    response["Access-Control-Allow-Headers"] = "Authorization, Content-Type"
                    response["Access-Control-Max-Age"] = "600"
                return response
            try:
                if request.method not in methods:
                    raise ApiError(405, f"{request.method} is not allowed here; use {' or '.join(methods)}.",
                                   "method_not_allowed", headers={"Allow": ", ".join(methods)})
                key = await _authenticate(request)
                return _cors(request, await view(request, key, *args, **kwargs))
            except ApiError as exc:
                return exc.response(request)

        wrapper.__name__ = view.__name__
        return wrapper

    return decorate


async def _authenticate(request):
    token = keys.bearer_token(request.headers.get("Authorization", ""))
    if token is None:
        raise ApiError(401, "No API key: send it as `Authorization: Bearer <key>`. People make their keys on "
                            "their account's API keys page.", "invalid_api_key")
    key = await database_sync_to_async(keys.check_key)(token)
    if key is None:
        raise ApiError(401, "This API key is not valid: it is wrong, revoked, or its account is not active.",
                       "invalid_api_key")
    return key


@csrf_exempt
async def not_found(request):
    return ApiError(404, f"There is no {request.path} here: this API offers GET /v1/models, "
                         "POST /v1/chat/completions and POST /v1/completions.", "not_found").response(request)


# --- models -------------------------------------------------------------------------------------------------
async def served_models() -> list[str]:
    """Model files people may use: with the site's own worker, the files in the models folder (the one a
    pinned model allows); with Redis workers, the models they serve or can load (chat.services)."""
    return sorted(await sync_to_async(services.available_models)())


def _known_files() -> set[str]:
    from chat.worker import list_model_files

    try:
        return {path.name for path in list_model_files()}
    except Exception:
        return set()


@api_view(("GET",))
async def models(request, key):
    created = int(time.time())
    return JsonResponse({"object": "list", "data": [
        {"id": name, "object": "model", "created": created, "owned_by": "llmsite"} for name in await served_models()]})


@api_view(("GET",))
async def model(request, key, name: str):
    """GET /v1/models/<id> (the openai package's models.retrieve): the model, or 404 in OpenAI's shape."""
    if name not in await served_models():
        raise ApiError(404, f"The model {name!r} does not exist; GET /v1/models lists the models.",
                       "model_not_found", "model")
    return JsonResponse({"id": name, "object": "model", "created": int(time.time()), "owned_by": "llmsite"})


async def _resolve_model(name: str) -> str:
    served = await served_models()
    for candidate in (name, name + ".gguf"):
        if candidate in served:
            return candidate
    known = _known_files()
    for candidate in (name, name + ".gguf"):
        if candidate in known:
            raise ApiError(503, f"No worker serves the model {candidate!r} now; GET /v1/models lists those that "
                                "are served.", "no_worker", "model")
    raise ApiError(404, f"The model {name!r} does not exist; GET /v1/models lists the models.", "model_not_found",
                   "model")


# --- chat completions ---------------------------------------------------------------------------------------
def _parse_body(request):
    try:
        return json.loads(request.body)
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: nesting deeper than Python's stack
        raise ApiError(400, "The request body is not valid JSON.", "invalid_json") from None


def _parse(parse, request):
    try:
        return parse(_parse_body(request), max_tokens=settings.LLMSITE_MAX_TOKENS,
                     max_chars=settings.LLMSITE_MAX_MESSAGE_CHARS)
    except BadRequest as exc:
        raise ApiError(400, exc.message, exc.code, exc.param) from None


@api_view(("POST",))
async def chat_completions(request, key):
    chat = _parse(parse_chat, request)
    return await _reply(key, chat, chat.messages, _stream, _complete)


@api_view(("POST",))
async def completions(request, key):
    """The legacy text completion: the prompt as it is, no chat template (the worker's raw-prompt mode)."""
    text = _parse(parse_completion, request)
    return await _reply(key, text, [], _text_stream, _text_complete)


async def _reply(key, chat, messages: list, stream, complete):
    """One reply through the chat's limits, queue and workers; `stream` or `complete` writes the answer."""
    model_file = await _resolve_model(chat.model)
    try:
        ticket = limits.admit(key.owner_id)  # the chat's per-person limits: rate and replies in flight
    except limits.LimitExceeded as exc:
        raise ApiError(429, exc.message, exc.code, headers={"Retry-After": str(exc.retry_after)}) from None
    generation = None
    try:
        manager = get_manager()
        manager.attach_loop()
        if manager.status()["state"] not in LIVE_STATES:
            await database_sync_to_async(services.ensure_model_started)(model_file)
        load = await database_sync_to_async(services.load_settings_for)(model_file)
        job_id = next_job_id()
        job = replies.start(manager, job_id, messages, chat.options,
                            {"conversation": None, "model_file": model_file, "load": load, "events": "caller"})
        ticket.bind(job_id)
        generation = Generation(manager, job, key=key, model_file=model_file, streamed=chat.stream, request=chat)
        first = await generation.next()
        if first["ev"] == "failed":
            status = FAILURE_STATUS.get(first.get("code"), 500)
            await generation.record("error", generation.stats({}))
            raise ApiError(status, first.get("message") or "The reply failed.", first.get("code") or "error")
        forced_open = await generation.forced_open()
        if chat.stream:
            response = StreamingHttpResponse(stream(generation, chat, first, forced_open),
                                             content_type="text/event-stream")
            response["Cache-Control"] = "no-cache"
            response["X-Accel-Buffering"] = "no"  # nginx: pass each event on at once
            generation = None  # the stream owns it now, and closes it
            return response
        return JsonResponse(await complete(generation, chat, first, forced_open))
    finally:
        if ticket.message_id is None:
            ticket.cancel()
        if generation is not None:
            generation.close()  # the client went away, or an error: stop the reply in the worker


def _finish_reason(chat, stats: dict, status: str) -> str:
    return "length" if status == "complete" and stats.get("tokens", 0) >= chat.options["max_tokens"] else "stop"


def _usage(stats: dict) -> dict:
    prompt, completion = stats.get("prompt_tokens") or 0, stats.get("tokens") or 0
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


async def _complete(generation: Generation, chat, event: dict, forced_open: bool) -> dict:
    while event["ev"] not in ("done", "failed"):
        event = await generation.next()
    if event["ev"] == "failed":
        stats = generation.stats({})
        await generation.record("error", stats)
        raise ApiError(FAILURE_STATUS.get(event.get("code"), 500), event.get("message") or "The reply failed.",
                       event.get("code") or "error")
    splitter = ReasoningSplitter(forced_open)
    reasoning, content = splitter.feed(generation.text)
    rest_reasoning, rest_content = splitter.finish()
    reasoning, content = reasoning + rest_reasoning, content + rest_content
    stats = generation.stats(event.get("stats") or {})
    await generation.record(event.get("status", "complete"), stats, reasoning, content)
    message = {"role": "assistant", "content": content}
    if reasoning:
        message["reasoning_content"] = reasoning
    return {
        "id": "chatcmpl-" + secrets.token_hex(12), "object": "chat.completion", "created": int(time.time()),
        "model": generation.model_file, "system_fingerprint": None,
        "choices": [{"index": 0, "message": message, "logprobs": None,
                     "finish_reason": _finish_reason(chat, stats, event.get("status", "complete"))}],
        "usage": _usage(stats),
    }


def _sse(data) -> bytes:
    return b"data: " + json.dumps(data, ensure_ascii=False).encode() + b"\n\n"


async def _stream(generation: Generation, chat, event: dict, forced_open: bool):
    """Server-sent events as OpenAI sends them: chunks with a `delta`, the finish reason, usage if asked for,
    then `data: [DONE]`. A client that disconnects cancels this generator: `finally` stops the reply."""
    base = {"id": "chatcmpl-" + secrets.token_hex(12), "object": "chat.completion.chunk",
            "created": int(time.time()), "model": generation.model_file, "system_fingerprint": None}
    usage = {"usage": None} if chat.include_usage else {}

    def chunk(delta: dict, finish_reason=None) -> bytes:
        return _sse({**base, "choices": [{"index": 0, "delta": delta, "logprobs": None,
                                          "finish_reason": finish_reason}], **usage})

    splitter = ReasoningSplitter(forced_open)
    try:
        yield chunk({"role": "assistant", "content": ""})
        while True:
            kind = event["ev"]
            if kind == "token":
                reasoning, content = splitter.feed(event["text"])
                if reasoning:
                    yield chunk({"reasoning_content": reasoning})
                if content:
                    yield chunk({"content": content})
            elif kind == "queued":
                yield f": queued, position {event['position']}\n\n".encode()  # an SSE comment: clients skip it
            elif kind == "failed":
                yield await _stream_failure(generation, event)
                return
            elif kind == "done":
                reasoning, content = splitter.finish()
                if reasoning:
                    yield chunk({"reasoning_content": reasoning})
                if content:
                    yield chunk({"content": content})
                stats = generation.stats(event.get("stats") or {})
                status = event.get("status", "complete")
                yield chunk({}, _finish_reason(chat, stats, status))
                if chat.include_usage:
                    yield _sse({**base, "choices": [], "usage": _usage(stats)})
                full_reasoning, full_content = split(generation.text, forced_open)
                await generation.record(status, stats, full_reasoning, full_content)
                yield b"data: [DONE]\n\n"
                return
            event = await generation.next()
    finally:
        generation.close()



async def _stream_failure(generation: Generation, event: dict) -> bytes:
    """A reply that failed in the middle of a stream: recorded, then an error event in OpenAI's shape and
    `data: [DONE]` (the status line went out with the first chunk)."""
    await generation.record("error", generation.stats({}))
    code = event.get("code") or "error"
    status = FAILURE_STATUS.get(code, 500)
    return _sse({"error": {"message": event.get("message") or "The reply failed.",
                           "type": ERROR_TYPES.get(status, "server_error"), "param": None, "code": code}}) + (
        b"data: [DONE]\n\n")


# --- text completions (/v1/completions) ------------------------------------------------------------------------
async def _text_complete(generation: Generation, text, event: dict, _forced_open: bool) -> dict:
    while event["ev"] not in ("done", "failed"):
        event = await generation.next()
    if event["ev"] == "failed":
        await generation.record("error", generation.stats({}))
        raise ApiError(FAILURE_STATUS.get(event.get("code"), 500), event.get("message") or "The reply failed.",
                       event.get("code") or "error")
    stats = generation.stats(event.get("stats") or {})
    status = event.get("status", "complete")
    await generation.record(status, stats, "", generation.text)
    return {
        "id": "cmpl-" + secrets.token_hex(12), "object": "text_completion", "created": int(time.time()),
        "model": generation.model_file, "system_fingerprint": None,
        "choices": [{"text": (text.prompt if text.echo else "") + generation.text, "index": 0, "logprobs": None,
                     "finish_reason": _finish_reason(text, stats, status)}],
        "usage": _usage(stats),
    }


async def _text_stream(generation: Generation, text, event: dict, _forced_open: bool):
    """Server-sent events as OpenAI sends them for completions: chunks with the text, the finish reason, usage if
    asked for, then `data: [DONE]`. A client that disconnects cancels this generator: `finally` stops the reply."""
    base = {"id": "cmpl-" + secrets.token_hex(12), "object": "text_completion", "created": int(time.time()),
            "model": generation.model_file, "system_fingerprint": None}
    usage = {"usage": None} if text.include_usage else {}

    def chunk(piece: str, finish_reason=None) -> bytes:
        return _sse({**base, "choices": [{"text": piece, "index": 0, "logprobs": None,
                                          "finish_reason": finish_reason}], **usage})

    try:
        if text.echo:
            yield chunk(text.prompt)
        while True:
            kind = event["ev"]
            if kind == "token":
                yield chunk(event["text"])
            elif kind == "queued":
                yield f": queued, position {event['position']}\n\n".encode()  # an SSE comment: clients skip it
            elif kind == "failed":
                yield await _stream_failure(generation, event)
                return
            elif kind == "done":
                stats = generation.stats(event.get("stats") or {})
                status = event.get("status", "complete")
                yield chunk("", _finish_reason(text, stats, status))
                if text.include_usage:
                    yield _sse({**base, "choices": [], "usage": _usage(stats)})
                await generation.record(status, stats, "", generation.text)
                yield b"data: [DONE]\n\n"
                return
            event = await generation.next()
    finally:
        generation.close()
