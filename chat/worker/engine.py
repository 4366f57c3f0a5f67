"""Continuous batching on one loaded model: several replies at once, a KV cache per slot.

Runs inside the worker process (chat/worker/process.py) and, like it, never imports Django.

The model is loaded by llama_cpp.Llama (tokenizer, GGUF metadata, chat template), but decoding goes through
llama.cpp's low-level API on a context of our own: `n_slots` sequences (n_seq_max), each with its own
`n_ctx` cells (kv_unified off, so the context is n_ctx * n_slots and split evenly, as llama-server's
--parallel does). Every `step()` builds one llama_batch: one token for each reply that is generating, then
as many prompt tokens of replies still reading their prompt as the batch has room for (a long prompt is
read in chunks, so the others keep going), and calls llama_decode once.

Each slot remembers the tokens its KV cache holds. A new reply takes the free slot that last served its
conversation, else an empty slot, else the free slot whose cached tokens share the longest prefix with its
prompt if that is at least half of it, else the least recently used one; only the tokens after the shared
prefix are evaluated. The stats of each reply say how many prompt tokens came from the cache and how many
were evaluated.
"""

from __future__ import annotations

import codecs
import ctypes
import random
import time
from collections import deque
from dataclasses import dataclass, field

DEFAULT_BATCH = 512
PENALTY_LAST_N = 64  # llama.cpp's default window for repeat_penalty


class ContextTooLong(Exception):
    """The prompt does not fit in one slot's context."""


@dataclass
class Slot:
    seq: int
    cached: list = field(default_factory=list)  # tokens whose K/V this sequence holds, positions 0..n-1
    conversation: object = None
    last_used: float = 0.0
    reply: Reply | None = None


@dataclass
class Reply:
    job: int
    prompt: list
    options: dict
    stops: list
    conversation: object = None
    slot: Slot | None = None
    n_fed: int = 0  # prompt tokens in the KV cache (cached + evaluated so far)
    n_cached: int = 0
    generated: list = field(default_factory=list)
    next_token: int | None = None  # sampled, not yet decoded
    i_batch: int = -1  # index of this reply's logits in the current batch
    sampler: object = None
    decoder: object = None
    pending: str = ""  # text held back because it may be the start of a stop string
    text: list = field(default_factory=list)
    stop_requested: bool = False
    t_submit: float = 0.0
    t_prompt_start: float | None = None
    t_first_sample: float | None = None
    t_first_text: float | None = None
    t_last_sample: float | None = None


class Engine:
    def __init__(self, llama, n_slots: int, n_ctx: int, n_batch: int = DEFAULT_BATCH, emit=None,
                 kv_unified: bool = False):
        import llama_cpp

        self.native = llama_cpp
        self.llama = llama
        self.n_slots = max(1, int(n_slots))
        self.n_ctx = int(n_ctx)  # per slot
        self.n_batch = max(int(n_batch), self.n_slots)
        self.emit = emit or (lambda event: None)
        self.model = llama._model.model
        self.vocab = llama_cpp.llama_model_get_vocab(self.model)
        params = llama_cpp.llama_context_params.from_buffer_copy(bytes(llama.context_params))
        params.n_ctx = self.n_ctx * self.n_slots
        params.n_seq_max = self.n_slots
        params.kv_unified = kv_unified
        params.n_batch = self.n_batch
        params.n_ubatch = self.n_batch
        self.ctx = llama_cpp.llama_init_from_model(self.model, params)
        if not self.ctx:
            raise RuntimeError(f"llama.cpp could not create a context for {self.n_slots} slots of {self.n_ctx} tokens")
        self.n_ctx = llama_cpp.llama_n_ctx_seq(self.ctx) or self.n_ctx
        self.memory = llama_cpp.llama_get_memory(self.ctx)
        self.batch = llama_cpp.llama_batch_init(self.n_batch, 0, 1)
        self.slots = [Slot(seq=i) for i in range(self.n_slots)]
        self.waiting: deque[Reply] = deque()
        self.replies: dict[int, Reply] = {}
        self.formatter = _chat_formatter(llama)
        self.counters = {"prompt_tokens": 0, "cached_tokens": 0, "evaluated_tokens": 0, "generated_tokens": 0}

    # --- public ----------------------------------------------------------------------------------------
    def prompt_tokens(self, messages: list, options: dict | None = None) -> tuple[list, list]:
        raw = raw_prompt(options)
        if raw is not None:  # /v1/completions: the text as it is, no chat template, no template stop strings
            return self.llama.tokenize(raw.encode("utf-8"), add_bos=True, special=True), []
        prompt, added_special, stops = chat_prompt(self.llama, messages, self.formatter)
        tokens = self.llama.tokenize(prompt.encode("utf-8"), add_bos=not added_special, special=True)
        return tokens, stops

    def submit(self, job: int, messages: list, options: dict | None = None, conversation=None) -> Reply:
        """Queue a reply; it starts at the next step with a free slot. ContextTooLong if it cannot fit."""
        tokens, stops = self.prompt_tokens(messages, options)
        stops += [s for s in (options or {}).get("stop") or () if s]  # the OpenAI API's `stop` strings
        if len(tokens) >= self.n_ctx:
            raise ContextTooLong(len(tokens))
        reply = Reply(job=job, prompt=tokens, options=dict(options or {}), stops=stops,
                      conversation=conversation, t_submit=time.perf_counter())
        self.replies[job] = reply
        self.waiting.append(reply)
        return reply

    def stop(self, job: int) -> None:
        reply = self.replies.get(job)
        if reply is not None:
            reply.stop_requested = True

    def stop_all(self) -> None:
        for reply in self.replies.values():
            reply.stop_requested = True

    def fail_all(self, code: str, message: str) -> None:
        for reply in list(self.replies.values()):
            self._fail(reply, code, message)

    @property
    def busy(self) -> bool:
        return bool(self.replies)

    @property
    def running(self) -> int:
        return sum(1 for slot in self.slots if slot.reply is not None)

    def cached_conversations(self) -> list:
        """The conversations whose KV cache a slot holds (a Redis worker announces them: the web side sends a
        conversation's next turn to the worker that holds its cache)."""
        return [s.conversation for s in self.slots if s.cached and s.conversation is not None]

    def status(self) -> dict:
        return {"slots": self.n_slots, "slots_in_use": self.running, "n_ctx_per_slot": self.n_ctx,
                "cached_conversations": sum(1 for s in self.slots if s.cached and s.reply is None),
                **self.counters}

    def step(self) -> bool:
        """Admit waiting replies, decode one batch, sample, emit events. False when there is nothing to do."""
        native = self.native
        for reply in list(self.replies.values()):
            if reply.stop_requested:
                self._finish(reply, "stopped")
        self._admit()
        batch = self.batch
        n = 0
        fed: list[tuple[Reply, list]] = []
        for slot in self.slots:
            reply = slot.reply
            if reply is not None and reply.next_token is not None:
                self._add(n, reply.next_token, len(slot.cached), slot.seq, True)
                reply.i_batch = n
                fed.append((reply, [reply.next_token]))
                n += 1
        for slot in self.slots:
            reply = slot.reply
            if reply is None or reply.next_token is not None or n >= self.n_batch:
                continue
            if reply.t_prompt_start is None:
                reply.t_prompt_start = time.perf_counter()
            chunk = reply.prompt[reply.n_fed:reply.n_fed + self.n_batch - n]
            last = reply.n_fed + len(chunk) == len(reply.prompt)
            for i, token in enumerate(chunk):
                self._add(n, token, len(slot.cached) + i, slot.seq, last and i == len(chunk) - 1)
                n += 1
            reply.i_batch = n - 1 if last else -1
            fed.append((reply, chunk))
        if n == 0:
            return bool(self.replies)
        batch.n_tokens = n
        code = native.llama_decode(self.ctx, batch)
        if code != 0:
            for reply, _ in fed:
                self._fail(reply, "generation_failed", f"llama_decode failed ({code}).")
            return bool(self.replies)
        now = time.perf_counter()
        for reply, tokens in fed:
            reply.slot.cached.extend(tokens)
            if reply.next_token is None:
                reply.n_fed += len(tokens)
                self.counters["evaluated_tokens"] += len(tokens)
                if reply.i_batch < 0:
                    continue
            else:
                reply.generated.append(reply.next_token)
            token = native.llama_sampler_sample(reply.sampler, self.ctx, reply.i_batch)
            if reply.t_first_sample is None:
                reply.t_first_sample = now
            reply.t_last_sample = now
            self._on_token(reply, token)
        return bool(self.replies)

    def run_until_idle(self) -> None:
        while self.step():
            pass

    def close(self) -> None:
        native = self.native
        for reply in list(self.replies.values()):
            self._release(reply)
        if self.batch is not None:
            native.llama_batch_free(self.batch)
            self.batch = None
        if self.ctx:
            native.llama_free(self.ctx)
            self.ctx = None

    # --- internals -------------------------------------------------------------------------------------
    def _add(self, i: int, token: int, pos: int, seq: int, logits: bool) -> None:
        batch = self.batch
        batch.token[i] = token
        batch.pos[i] = pos
        batch.n_seq_id[i] = 1
        batch.seq_id[i][0] = seq
        batch.logits[i] = logits

    def _admit(self) -> None:
        while self.waiting:
            free = [slot for slot in self.slots if slot.reply is None]
            if not free:
                return
            reply = self.waiting.popleft()
            slot = self._choose_slot(free, reply)
            keep = _common_prefix(slot.cached, reply.prompt)
            keep = min(keep, len(reply.prompt) - 1)  # evaluate at least one token: it gives the logits
            self.native.llama_memory_seq_rm(self.memory, slot.seq, keep, -1)
            del slot.cached[keep:]
            slot.reply, slot.conversation, slot.last_used = reply, reply.conversation, time.monotonic()
            reply.slot, reply.n_fed, reply.n_cached = slot, keep, keep
            self.counters["prompt_tokens"] += len(reply.prompt)
            self.counters["cached_tokens"] += keep
            reply.sampler = self._sampler(reply.options, reply.prompt)
            reply.decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def _choose_slot(self, free: list, reply: Reply) -> Slot:
        if reply.conversation is not None:
            for slot in free:
                if slot.conversation == reply.conversation:
                    return slot
        empty = [slot for slot in free if not slot.cached]
        if empty:  # do not evict another conversation's cache while a slot holds none
            return empty[0]
        # The slot whose cache shares the longest prefix, if that is at least half the prompt (as
        # llama-server's slot similarity); otherwise the least recently used one.
        best = max(free, key=lambda s: (_common_prefix(s.cached, reply.prompt), -s.last_used))
        if _common_prefix(best.cached, reply.prompt) * 2 >= len(reply.prompt):
            return best
        return min(free, key=lambda s: s.last_used)

    def _sampler(self, options: dict, prompt: list):
        native = self.native
        params = native.llama_sampler_chain_default_params()
        chain = native.llama_sampler_chain_init(params)
        temperature = float(options.get("temperature", 0.7))
        repeat = float(options.get("repeat_penalty", 1.1))
        frequency = float(options.get("frequency_penalty") or 0.0)  # the OpenAI API's penalties
        presence = float(options.get("presence_penalty") or 0.0)
        if repeat != 1.0 or frequency or presence:
            # The 0.3.36 binding declares a leading n_vocab that the C function no longer has: on x86-64
            # and arm64 the first two ints go in registers, so the C side reads the first one as last_n.
            native.llama_sampler_chain_add(
                chain, native.llama_sampler_init_penalties(PENALTY_LAST_N, PENALTY_LAST_N, repeat, frequency, presence))
        if temperature <= 0:
            native.llama_sampler_chain_add(chain, native.llama_sampler_init_greedy())
        else:
            seed = options.get("seed")
            seed = random.getrandbits(32) if seed is None else int(seed) & 0xFFFFFFFF
            native.llama_sampler_chain_add(chain, native.llama_sampler_init_top_k(int(options.get("top_k", 40))))
            native.llama_sampler_chain_add(chain, native.llama_sampler_init_top_p(float(options.get("top_p", 0.95)), 1))
            native.llama_sampler_chain_add(chain, native.llama_sampler_init_min_p(float(options.get("min_p", 0.05)), 1))
            native.llama_sampler_chain_add(chain, native.llama_sampler_init_temp(temperature))
            native.llama_sampler_chain_add(chain, native.llama_sampler_init_dist(seed))
        for token in prompt[-PENALTY_LAST_N:]:  # the penalty window starts with the prompt, as llama-server
            native.llama_sampler_accept(chain, token)
        return chain

    def _on_token(self, reply: Reply, token: int) -> None:
        native = self.native
        max_tokens = int(reply.options.get("max_tokens", 512) or 0)
        if native.llama_vocab_is_eog(self.vocab, token):
            self._finish(reply, "complete")
            return
        piece = _piece(native, self.vocab, token)
        text = reply.pending + reply.decoder.decode(piece)
        cut = _find_stop(text, reply.stops)
        if cut is not None:
            self._send_text(reply, text[:cut])
            reply.pending = ""
            self._finish(reply, "complete")
            return
        hold = _partial_stop(text, reply.stops)
        self._send_text(reply, text[:len(text) - hold])
        reply.pending = text[len(text) - hold:]
        reply.next_token = token
        n_generated = len(reply.generated) + 1
        if (max_tokens > 0 and n_generated >= max_tokens) or len(reply.slot.cached) + 1 >= self.n_ctx:
            reply.generated.append(token)
            reply.next_token = None
            self._send_text(reply, reply.pending + reply.decoder.decode(b"", final=True))
            reply.pending = ""
            self._finish(reply, "complete", finish_reason="length")  # as llama-server says it: cut short

    def _send_text(self, reply: Reply, text: str) -> None:
        if not text:
            return
        if reply.t_first_text is None:
            reply.t_first_text = time.perf_counter()
        reply.text.append(text)
        self.emit({"ev": "token", "job": reply.job, "text": text})

    def _stats(self, reply: Reply) -> dict:
        tokens = len(reply.generated)
        stats = {"tokens": tokens, "prompt_tokens": len(reply.prompt), "prompt_cached": reply.n_cached,
                 "prompt_evaluated": max(0, reply.n_fed - reply.n_cached), "ttft_ms": None,
                 "prompt_tokens_per_s": None, "tokens_per_s": None, "slot": reply.slot.seq if reply.slot else None}
        first = reply.t_first_text or reply.t_first_sample
        if first is not None:
            stats["ttft_ms"] = round((first - reply.t_submit) * 1000, 2)
        if reply.t_first_sample and reply.t_prompt_start and reply.t_first_sample > reply.t_prompt_start:
            stats["prompt_tokens_per_s"] = round(
                stats["prompt_evaluated"] / (reply.t_first_sample - reply.t_prompt_start), 2)
        if tokens > 1 and reply.t_last_sample and reply.t_last_sample > reply.t_first_sample:
            stats["tokens_per_s"] = round((tokens - 1) / (reply.t_last_sample - reply.t_first_sample), 2)
        return stats

    def _finish(self, reply: Reply, status: str, finish_reason: str = "stop") -> None:
        if status == "stopped" and reply.next_token is not None:
            reply.generated.append(reply.next_token)  # sent as text already; not decoded
        self.counters["generated_tokens"] += len(reply.generated)
        self._send_text(reply, reply.pending)
        stats = {**self._stats(reply), "finish_reason": finish_reason}
        self._release(reply)
        self.emit({"ev": "done", "job": reply.job, "status": status, "stats": stats,
                   "conversations": self.cached_conversations()})

    def _fail(self, reply: Reply, code: str, message: str) -> None:
        slot = reply.slot
        self._release(reply)
        if slot is not None:  # its cache may be half written
            self.native.llama_memory_seq_rm(self.memory, slot.seq, -1, -1)
            slot.cached.clear()
            slot.conversation = None
        self.emit({"ev": "failed", "job": reply.job, "code": code, "message": message})

    def _release(self, reply: Reply) -> None:
        self.replies.pop(reply.job, None)
        if reply in self.waiting:
            self.waiting.remove(reply)
        if reply.slot is not None:
            reply.slot.reply = None
            reply.slot.last_used = time.monotonic()
        if reply.sampler is not None:
            self.native.llama_sampler_free(reply.sampler)
            reply.sampler = None
        reply.next_token = None


def _common_prefix(a: list, b: list) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def _find_stop(text: str, stops: list) -> int | None:
    found = [text.find(s) for s in stops if s in text]
    return min(found) if found else None


def _partial_stop(text: str, stops: list) -> int:
    """Length of the longest end of `text` that begins a stop string (held back until it is decided)."""
    best = 0
    for stop in stops:
        for n in range(min(len(stop) - 1, len(text)), best, -1):
            if text.endswith(stop[:n]):
                best = n
                break
    return best


def _piece(native, vocab, token: int) -> bytes:
    size = 64
    while True:
        buffer = ctypes.create_string_buffer(size)
        n = native.llama_token_to_piece(vocab, token, buffer, size, 0, False)
        if n >= 0:
            return buffer.raw[:n]
        size = -n


def _chat_formatter(llama):
    """The GGUF's own chat template (what Llama.create_chat_completion renders), else the named format."""
    from llama_cpp import llama_chat_format

    template = llama.metadata.get("tokenizer.chat_template")
    if template:
        model = llama._model
        eos_id, bos_id = llama.token_eos(), llama.token_bos()
        return llama_chat_format.Jinja2ChatFormatter(
            template=template,
            eos_token=model.token_get_text(eos_id) if eos_id != -1 else "",
            bos_token=model.token_get_text(bos_id) if bos_id != -1 else "",
            stop_token_ids=[eos_id],
        )
    name = (llama.chat_format or "chatml").replace("-", "_")
    return getattr(llama_chat_format, f"format_{name}", llama_chat_format.format_chatml)


def raw_prompt(options: dict | None) -> str | None:
    """The raw prompt of a /v1/completions request (options["prompt"]: text given to the model as it is, no chat
    template; the job's messages are then empty), or None for a chat reply."""
    raw = (options or {}).get("prompt")
    return raw if isinstance(raw, str) else None


def chat_prompt(llama, messages: list, formatter=None) -> tuple[str, bool, list]:
    """The prompt for `messages` in the model's chat template: (text, whether it holds its BOS, stop strings).

    When the last message is the assistant's, the prompt goes on from its last character, so the model continues
    that reply (a reply cut at the length limit): the template is rendered without the generation prompt and cut
    right after the reply's text, as transformers' `continue_final_message` does."""
    formatter = formatter or _chat_formatter(llama)
    continuing = bool(messages) and messages[-1]["role"] == "assistant"
    if continuing and hasattr(formatter, "add_generation_prompt"):
        formatter.add_generation_prompt = False
        try:
            result = formatter(messages=messages)
        finally:
            formatter.add_generation_prompt = True
    else:
        result = formatter(messages=messages)
    prompt = result.prompt
    if continuing:
        partial = messages[-1]["content"]
        at = prompt.rfind(partial)
        if at < 0:  # a template that rewrites the text (strips it): cut after what it kept
            partial = partial.strip()
            at = prompt.rfind(partial)
        if at >= 0:
            prompt = prompt[:at + len(partial)]
    stops = result.stop if isinstance(result.stop, list) else ([result.stop] if result.stop else [])
    return prompt, bool(result.added_special), [s for s in stops if s]
