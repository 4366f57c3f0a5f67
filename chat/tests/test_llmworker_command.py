"""`manage.py llmworker` refuses bad settings with a message, before it reaches Redis or loads anything."""

import concurrent.futures

import pytest
from django.core.management import CommandError, call_command


def test_it_needs_redis_url(settings):
    settings.REDIS_URL = ""
    with pytest.raises(CommandError, match="REDIS_URL is not set"):
        call_command("llmworker")


@pytest.mark.parametrize("value", ["-2", "many", "1.5"])
def test_it_refuses_a_bad_n_gpu_layers(settings, value):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    with pytest.raises(CommandError, match="--n-gpu-layers must be"):
        call_command("llmworker", "--n-gpu-layers", value)


def test_it_refuses_a_model_that_is_not_in_the_models_folder(settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    with pytest.raises(CommandError, match="not in the models folder"):
        call_command("llmworker", "--model", "no-such-model.gguf", "--n-gpu-layers", "0")
    with pytest.raises(CommandError, match="is not a model file name"):
        call_command("llmworker", "--model", "../etc/passwd", "--n-gpu-layers", "0")


def test_it_says_so_when_redis_cannot_be_reached(settings):
    from channels.layers import channel_layers

    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens on port 1
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer",
                                           "CONFIG": {"hosts": [settings.REDIS_URL]}}}
    channel_layers.backends.clear()
    try:
        # In a thread: the command runs its own event loop, and the browser tests may hold this thread's.
        with concurrent.futures.ThreadPoolExecutor(max_workers=1) as thread:
            with pytest.raises(CommandError, match="Cannot reach Redis"):
                thread.submit(call_command, "llmworker", "--n-gpu-layers", "0").result()
    finally:
        channel_layers.backends.clear()


def test_it_refuses_a_bad_thread_count(settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    with pytest.raises(CommandError, match="n_threads must be a number from 1 to 1024"):
        call_command("llmworker", "--threads", "0", "--n-gpu-layers", "0")


@pytest.mark.parametrize("value", ["-1", "65"])
def test_it_refuses_a_bad_parallel(settings, value):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    with pytest.raises(CommandError, match="parallel must be .auto. or a number from 0 to 64"):
        call_command("llmworker", "--parallel", value, "--n-gpu-layers", "0")


@pytest.mark.parametrize(("value", "parsed"), [("auto", None), ("AUTO", None), ("-1", -1), ("0", 0), ("12", 12)])
def test_it_reads_n_gpu_layers_as_the_models_page_does(value, parsed):
    from chat.management.commands.llmworker import gpu_layers

    assert gpu_layers(value) == parsed


def test_it_refuses_what_the_worker_would_refuse_before_reaching_redis(settings):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"
    with pytest.raises(CommandError, match="needs flash attention"):
        call_command("llmworker", "--kv-type", "q8_0", "--n-gpu-layers", "0")


@pytest.mark.parametrize(("url", "shown"), [
    ("redis://:s3cret@redis.lan:6379/0", "redis://:***@redis.lan:6379/0"),
    ("rediss://user:s3cret@10.0.0.5:6380/1?ssl_ca_certs=/etc/ca.pem", "rediss://user:***@10.0.0.5:6380/1"),
    ("redis://[::1]:6379/0", "redis://[::1]:6379/0"),
    ("unix:///run/redis.sock?password=s3cret", "unix:///run/redis.sock"),
    ("redis://:s3cret@host:notaport/0", "(a REDIS_URL that cannot be shown)"),
])
def test_redis_urls_are_shown_without_their_password(url, shown):
    from chat.worker.redis_layer import redacted_url

    assert redacted_url(url) == shown
