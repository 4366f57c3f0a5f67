"""The LLM worker: a separate OS process that owns the one llama_cpp.Llama object."""


def worker_status() -> dict:
    """The worker's state as /healthz reports it."""
    return {"state": "stopped"}
