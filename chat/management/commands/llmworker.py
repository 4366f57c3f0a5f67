"""`python manage.py llmworker`: an LLM worker for the site, on any machine that reaches its Redis.

Needs REDIS_URL and LLMSITE_REDIS_KEY, the same as the site's (messages are sealed with the key). Loads one
model from this machine's models folder (LLMSITE_MODELS_DIR) and serves it until stopped with Ctrl-C or
SIGTERM; replies it is writing then end with an error that keeps their text. See chat/worker/remote.py.
It never prints REDIS_URL's password, nor the key.
"""

import asyncio
import signal
import threading

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from chat.forms import NGpuLayersField
from chat.services import configured_load_settings
from chat.worker.files import resolve_model_file
from chat.worker.redis_layer import redacted_url
from chat.worker.remote import RemoteWorker, default_name
from chat.worker.types import LoadSettings, parse_parallel


def gpu_layers(value: str):
    """None for auto, else -1 or a number: parsed as the Models page parses it."""
    try:
        return NGpuLayersField(required=False).clean(value)
    except ValidationError:
        raise ValueError(f"--n-gpu-layers must be 'auto', -1 (all) or a number of layers; got {value!r}") from None


def gpu_layers_text(value) -> str:
    return "auto" if value is None else str(value)


class Command(BaseCommand):
    help = "Serve one GGUF model to the site through Redis (REDIS_URL), from this machine's models folder."

    def add_arguments(self, parser):
        defaults = configured_load_settings()  # the site's LLMSITE_MODEL, LLMSITE_N_GPU_LAYERS, LLMSITE_N_CTX
        parser.add_argument("--model", default=defaults["file_name"],
                            help="a .gguf file in the models folder (default: %(default)s)")
        parser.add_argument("--n-gpu-layers", default=gpu_layers_text(defaults["n_gpu_layers"]), metavar="auto|-1|N",
                            help="layers on the GPU: auto (the advisor's estimate for this GPU), -1 for all, or N")
        parser.add_argument("--n-ctx", type=int, default=defaults["n_ctx"], help="context length (%(default)s)")
        parser.add_argument("--flash-attn", action="store_true", help="use flash attention")
        parser.add_argument("--kv-type", choices=("f16", "q8_0", "q4_0"), default="f16", help="KV cache type")
        parser.add_argument("--threads", type=int, default=None, metavar="N",
                            help="CPU threads (default: llama-cpp-python's, half the cores to decode and all of "
                                 "them for prompts); give workers that share a machine their own share")
        parser.add_argument("--parallel", default=str(settings.LLMSITE_PARALLEL), metavar="auto|N",
                            help="replies this worker writes at once, each with its own n_ctx of KV cache: a "
                                 "number (0: one at a time, no batching) or auto, as many as fit in this "
                                 "machine's memory (default: LLMSITE_PARALLEL, %(default)s)")
        parser.add_argument("--pin", action="store_true",
                            help="keep this model loaded: never load another model for a conversation that "
                                 "uses one (without it, the worker loads any model of its folder on demand)")
        parser.add_argument("--name", default=default_name(),
                            help="how the site shows this worker (default: host-pid, %(default)s)")

    def handle(self, *args, **options):
        if not settings.REDIS_URL:
            raise CommandError("REDIS_URL is not set: a worker reaches the site through its Redis, e.g. "
                               "REDIS_URL=redis://192.168.1.10:6379/0 python manage.py llmworker")
        try:
            resolve_model_file(options["model"])  # a wrong name fails here, before Redis is asked
            load_settings = {
                "file_name": options["model"],
                "n_gpu_layers": gpu_layers(options["n_gpu_layers"]),
                "n_ctx": options["n_ctx"],
                "flash_attn": options["flash_attn"],
                "kv_type": options["kv_type"],
                "n_threads": options["threads"],
                "parallel": parse_parallel(options["parallel"]),
            }
            LoadSettings(**load_settings)  # what the worker would refuse, refused before Redis is asked
            asyncio.run(self.serve(load_settings, options["name"], options["pin"]))
        except ValueError as exc:
            raise CommandError(str(exc)) from None

    async def serve(self, load_settings: dict, name: str, pin: bool = False) -> None:
        from channels.layers import get_channel_layer

        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        if threading.current_thread() is threading.main_thread():  # signals reach the main thread only
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
        worker = RemoteWorker(get_channel_layer(), load_settings, name=name,
                              announce_s=settings.LLMSITE_WORKER_ANNOUNCE_MS / 1000, report=self.report, pin=pin)
        self.name = name
        # Never REDIS_URL itself: it may carry Redis's password.
        self.stdout.write(f"Worker {name}: loading {load_settings['file_name']} for "
                          f"{redacted_url(settings.REDIS_URL)} (Ctrl-C stops it)")
        if settings.LLMSITE_REDIS_KEYS:
            self.stdout.write(f"Worker {name}: messages are sealed with LLMSITE_REDIS_KEY")
        else:
            self.stderr.write(f"Worker {name}: LLMSITE_REDIS_INSECURE is set: messages go through Redis in the "
                              "clear, and anyone who reaches Redis can read them or answer as a worker")
        await worker.run(stop)
        self.stdout.write(f"Worker {name}: stopped after {worker.served} replies")

    def report(self, status: dict) -> None:
        state = status["state"]
        if state == "ready":
            self.stdout.write(f"Worker {self.name}: ready, {status['model_file']} with {status['n_gpu_layers']} "
                              f"of {status['n_layers']} layers on the GPU, n_ctx {status['n_ctx']}")
        elif state == "error":
            self.stderr.write(f"Worker {self.name}: {status['error']}")
        elif state in ("starting", "loading"):
            self.stdout.write(f"Worker {self.name}: loading")
        self.stdout.flush()

