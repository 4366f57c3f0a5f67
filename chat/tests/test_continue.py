"""Continuing a reply cut at the length limit, in the worker itself, with the real SmolLM2 model: the prompt goes
on from the reply's last character, and greedy decoding then writes what one longer reply would have."""

import queue

import pytest

from advisor.modelfiles import default_model_file
from chat.tests.test_batching import run_jobs, until
from chat.worker.transport import PipeTransport

MODEL = default_model_file()
QUESTION = [{"role": "user", "content": "Write a long story about a lighthouse."}]
GREEDY = {"temperature": 0.0, "seed": 1}

pytestmark = pytest.mark.model


def test_the_continuation_prompt_is_the_reply_prompt_followed_by_the_reply_text():
    import llama_cpp

    from chat.worker.engine import chat_prompt

    llama = llama_cpp.Llama(model_path=str(MODEL), vocab_only=True, verbose=False)
    asked, _, stops = chat_prompt(llama, QUESTION)
    partial = "Once upon a time, a keeper"
    continued, _, _ = chat_prompt(llama, [*QUESTION, {"role": "assistant", "content": partial}])
    assert asked.endswith("<|im_start|>assistant\n")
    assert continued == asked + partial, "the turn is left open: no end-of-turn, no new assistant header"
    assert "<|im_end|>" in stops


@pytest.fixture(params=[0, 2], ids=["one-at-a-time", "batched"])
def worker(request):
    events, deaths = queue.Queue(), queue.Queue()
    transport = PipeTransport()
    transport.start(events.put, deaths.put)
    transport.send({"op": "load", "path": str(MODEL), "file_name": MODEL.name, "n_gpu_layers": 0, "n_ctx": 1024,
                    "flash_attn": False, "kv_type": "f16", "n_threads": 2, "parallel": request.param})
    assert until(events, lambda e: e["ev"] in ("loaded", "load_failed"))["ev"] == "loaded"
    yield transport, events
    transport.close()


def generate(worker, job, messages, max_tokens):
    transport, events = worker
    transport.send({"op": "generate", "job": job, "messages": messages,
                    "options": {**GREEDY, "max_tokens": max_tokens}})
    finished, _ = run_jobs(events, {job})
    return finished[job]


def test_a_reply_cut_at_max_tokens_says_length_and_continuing_it_writes_the_rest(worker):
    whole, done = generate(worker, 1, QUESTION, 16)
    assert done["stats"]["finish_reason"] == "length"
    first, done = generate(worker, 2, QUESTION, 8)
    assert (done["status"], done["stats"]["finish_reason"], done["stats"]["tokens"]) == ("complete", "length", 8)
    rest, done = generate(worker, 3, [*QUESTION, {"role": "assistant", "content": first}], 8)
    assert done["status"] == "complete" and rest
    assert first + rest == whole, "greedy decoding goes on exactly where the cut reply stopped"
