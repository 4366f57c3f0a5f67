"""The LLM worker: a separate OS process that owns the one llama_cpp.Llama object, and its web-side manager.

Without Redis the manager is a WorkerManager (manager.py) that starts the worker as its child process.
With REDIS_URL it is a WorkerPool (pool.py) that sends replies to `manage.py llmworker` processes
(remote.py) anywhere on the LAN; both answer the calls below.

    from chat.worker import get_manager, list_model_files
    get_manager().status()   -> dict (state, model_file, progress, n_gpu_layers, ..., queue_length, error, pid)
    get_manager().load(file_name, n_gpu_layers="auto"|None|int, n_ctx=..., flash_attn=..., kv_type=...)
    get_manager().unload()

Nothing here imports Django models or llama_cpp at import time: the worker process imports this package,
so the manager and the pool (which read Django's settings) are imported when the web side first asks.
Nothing in chat/worker/ imports this package or the rest of chat (scripts/import_cycles.py checks).
"""

import atexit
import threading

_manager = None
_manager_lock = threading.Lock()


def get_manager():
    """This web process's manager (created on first use): a WorkerManager with its own worker process, or,
    with REDIS_URL set, a WorkerPool that sends replies to `manage.py llmworker` processes on the LAN."""
    global _manager
    with _manager_lock:
        if _manager is None:
            from django.conf import settings

            if settings.REDIS_URL:
                from chat.worker.pool import WorkerPool

                _manager = WorkerPool()
            else:
                from chat.worker.manager import WorkerManager

                _manager = WorkerManager()
            atexit.register(_manager.shutdown)
        return _manager


def list_model_files():
    """`*.gguf` files in settings.MODELS_DIR (the default model always included), as Paths sorted by name."""
    from chat.worker.files import list_model_files as _list_model_files

    return _list_model_files()


def worker_status() -> dict:
    """The manager's status as plain JSON values (for /healthz and the pages); never raises.

    No worker is started by asking. A manager that cannot be asked is reported as "unavailable".
    """
    import logging

    try:
        status = dict(get_manager().status())
    except Exception as exc:  # a status page must render whatever state the worker is in
        logging.getLogger(__name__).warning("Could not read the LLM worker's status: %s", exc)
        return {"state": "unavailable", "error": str(exc)}
    return {str(key): _plain(value) for key, value in status.items()}


def _plain(value):
    """JSON values only: lists and dicts (the pool's workers) are kept, anything else becomes text."""
    if isinstance(value, str | int | float | bool | type(None)):
        return value
    if isinstance(value, list | tuple):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {str(key): _plain(item) for key, item in value.items()}
    return str(value)
