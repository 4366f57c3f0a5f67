"""The chat's pages through Django's test client: who sees what, forms, exports, and the Models page."""

import json

import pytest
from django.conf import settings as django_settings
from django.contrib.auth import get_user_model
from django.shortcuts import resolve_url
from django.test import Client
from django.urls import reverse

from advisor.modelfiles import default_model_file
from chat.models import Conversation, Message, ModelConfig, Role, Status

pytestmark = pytest.mark.django_db

PASSWORD = "a-long-test-password"


@pytest.fixture(autouse=True)
def plain_static_storage(settings):
    # The test client renders templates without a collectstatic run, so hashed names are not available.
    settings.STORAGES = {**settings.STORAGES,
                         "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}


@pytest.fixture
def web():
    # Named apart from pytest-django's `client`: chat/tests/conftest.py has a WebSocket fixture by that name.
    return Client()


@pytest.fixture
def user():
    return get_user_model().objects.create_user("ada", password=PASSWORD)


@pytest.fixture
def other_user():
    return get_user_model().objects.create_user("mallory", password=PASSWORD)


@pytest.fixture
def staff():
    return get_user_model().objects.create_user("grace", password=PASSWORD, is_staff=True)


@pytest.fixture
def signed_in(web, user):
    web.force_login(user)
    return web


@pytest.fixture
def conversation(user):
    conv = Conversation.objects.create(owner=user, title="Rust lifetimes")
    Message.objects.create(conversation=conv, role=Role.USER, content="What is a lifetime?")
    Message.objects.create(
        conversation=conv, role=Role.ASSISTANT, content="A **lifetime** is a scope.", completion_tokens=7,
        ttft_ms=12.5, decode_tokens_per_s=88.25,
    )
    return conv


@pytest.fixture
def foreign_conversation(other_user):
    return Conversation.objects.create(owner=other_user, title="Someone else's secrets")


class FakeManager:
    """Stands in for chat.worker's manager so that view tests start no llama.cpp process."""

    def __init__(self):
        self.loads = []
        self.unloads = 0
        self.pins = []

    def status(self):
        return {"state": "ready", "model_file": "loaded.gguf", "progress": 1.0, "n_gpu_layers": 0, "n_layers": 31,
                "n_ctx": 4096, "flash_attn": False, "kv_type": "f16", "queue_length": 0, "error": None, "pid": 1}

    def load(self, file_name, **settings):
        self.loads.append((file_name, settings))

    def unload(self):
        self.unloads += 1

    def pin(self, file_name):
        self.pins.append(file_name)

    def available_models(self):
        return ["loaded.gguf"]


@pytest.fixture
def manager(monkeypatch):
    fake = FakeManager()
    monkeypatch.setattr("chat.worker.get_manager", lambda: fake)
    return fake


@pytest.fixture
def models_dir(tmp_path, settings):
    settings.MODELS_DIR = tmp_path
    (tmp_path / "broken.gguf").write_bytes(b"GGUF\x03\x00\x00\x00" + b"\xff" * 20)
    (tmp_path / "notes.gguf").write_text("these are not weights")
    return tmp_path


# --- Signing in ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["chat:index", "chat:models"])
def test_it_sends_visitors_to_the_sign_in_page(web, name):
    response = web.get(reverse(name))
    assert response.status_code == 302
    assert response.url.startswith(resolve_url(django_settings.LOGIN_URL) + "?next=")


def test_it_sends_visitors_of_a_conversation_to_the_sign_in_page(web, conversation):
    response = web.get(reverse("chat:conversation", args=[conversation.pk]))
    assert response.status_code == 302
    assert response.url.startswith(resolve_url(django_settings.LOGIN_URL) + "?next=")


def test_it_shows_the_chat_page_to_a_signed_in_user(signed_in, manager):
    response = signed_in.get(reverse("chat:index"))
    assert response.status_code == 200
    assert b'id="composer-input"' in response.content
    config = json.loads(response.content.split(b'id="chat-config" type="application/json">')[1].split(b"</script>")[0])
    assert config["conversation"] is None
    assert config["wsPath"] == "/ws/chat/"


def test_the_chat_page_has_no_inline_scripts_or_styles(signed_in, conversation, manager):
    html = signed_in.get(reverse("chat:conversation", args=[conversation.pk])).content.decode()
    scripts = [tag.split(">")[0] for tag in html.split("<script")[1:]]
    assert all(' src="' in tag or 'type="application/json"' in tag for tag in scripts), scripts
    assert " style=" not in html and "<style" not in html


def test_it_renders_a_page_when_the_worker_cannot_be_asked(signed_in, monkeypatch):
    def broken():
        raise RuntimeError("no worker")

    monkeypatch.setattr("chat.worker.get_manager", broken)
    assert signed_in.get(reverse("chat:index")).status_code == 200


# --- Owners only --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "name", "extra"),
    [
        ("get", "chat:conversation", ()),
        ("get", "chat:rename", ()),
        ("post", "chat:rename", ()),
        ("get", "chat:delete", ()),
        ("post", "chat:delete", ()),
        ("post", "chat:system_prompt", ()),
        ("get", "chat:export", ("md",)),
        ("get", "chat:export", ("json",)),
    ],
)
def test_it_answers_404_for_someone_elses_conversation(signed_in, foreign_conversation, manager, method, name, extra):
    url = reverse(name, args=[foreign_conversation.pk, *extra])
    response = getattr(signed_in, method)(url, {"title": "mine now", "system_prompt": "x"} if method == "post" else {})
    assert response.status_code == 404
    foreign_conversation.refresh_from_db()
    assert foreign_conversation.title == "Someone else's secrets"


def test_it_lists_only_the_users_own_conversations(signed_in, conversation, foreign_conversation, manager):
    response = signed_in.get(reverse("chat:index"))
    assert "Rust lifetimes" in response.content.decode()
    assert "Someone else" not in response.content.decode()


# --- Conversations -------------------------------------------------------------------------------------------------


def test_it_shows_a_conversations_messages_without_javascript(signed_in, conversation, manager):
    page = signed_in.get(reverse("chat:conversation", args=[conversation.pk])).content.decode()
    assert "What is a lifetime?" in page
    assert "A **lifetime** is a scope." in page  # the raw text: the browser renders the Markdown
    assert "7 tokens · 88.3 tokens/s · first token after 13 ms" in page


def test_it_escapes_hostile_message_text(signed_in, conversation, manager):
    Message.objects.create(conversation=conversation, role=Role.ASSISTANT,
                           content='<img src=x onerror="alert(1)"><script>alert(2)</script>')
    page = signed_in.get(reverse("chat:conversation", args=[conversation.pk])).content.decode()
    assert "<img src=x" not in page
    assert "<script>alert(2)" not in page
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;&lt;script&gt;alert(2)&lt;/script&gt;" in page


def test_it_starts_a_new_conversation_with_a_system_prompt(signed_in, user):
    response = signed_in.post(reverse("chat:new"), {"system_prompt": "  Answer in French.  "})
    conv = Conversation.objects.get(owner=user)
    assert response.status_code == 302
    assert response.url == reverse("chat:conversation", args=[conv.pk])
    assert conv.system_prompt == "Answer in French."


def test_it_reuses_an_untouched_empty_conversation(signed_in, user):
    signed_in.post(reverse("chat:new"))
    signed_in.post(reverse("chat:new"))
    assert Conversation.objects.filter(owner=user).count() == 1


def test_it_refuses_get_for_new(signed_in):
    assert signed_in.get(reverse("chat:new")).status_code == 405


def test_it_renames_a_conversation(signed_in, conversation):
    response = signed_in.post(reverse("chat:rename", args=[conversation.pk]), {"title": "  Borrow   checker "})
    assert response.status_code == 302
    conversation.refresh_from_db()
    assert conversation.title == "Borrow checker"


def test_it_rejects_an_empty_title_with_a_form_error(signed_in, conversation):
    response = signed_in.post(reverse("chat:rename", args=[conversation.pk]), {"title": "   "})
    assert response.status_code == 200
    assert response.context["form"].errors["title"]
    conversation.refresh_from_db()
    assert conversation.title == "Rust lifetimes"


def test_it_rejects_a_title_that_is_too_long(signed_in, conversation):
    response = signed_in.post(reverse("chat:rename", args=[conversation.pk]), {"title": "x" * 201})
    assert response.status_code == 200
    assert "title" in response.context["form"].errors


def test_it_asks_before_deleting(signed_in, conversation):
    response = signed_in.get(reverse("chat:delete", args=[conversation.pk]))
    assert response.status_code == 200
    assert Conversation.objects.filter(pk=conversation.pk).exists()


def test_it_deletes_a_conversation_and_its_messages(signed_in, conversation):
    response = signed_in.post(reverse("chat:delete", args=[conversation.pk]))
    assert response.status_code == 302
    assert response.url == reverse("chat:index")
    assert not Conversation.objects.filter(pk=conversation.pk).exists()
    assert not Message.objects.filter(conversation_id=conversation.pk).exists()


def test_it_rejects_a_system_prompt_the_socket_would_refuse(signed_in, conversation, manager):
    response = signed_in.post(reverse("chat:system_prompt", args=[conversation.pk]), {"system_prompt": "x" * 20001})
    assert response.status_code == 200
    assert response.context["system_form"].errors["system_prompt"]
    conversation.refresh_from_db()
    assert conversation.system_prompt == ""


def test_it_saves_the_system_prompt(signed_in, conversation):
    response = signed_in.post(reverse("chat:system_prompt", args=[conversation.pk]), {"system_prompt": "Be brief."})
    assert response.status_code == 302
    conversation.refresh_from_db()
    assert conversation.system_prompt == "Be brief."


@pytest.mark.parametrize("query", ["lifetimes", "LIFETIME?"])
def test_it_searches_titles_and_message_text(signed_in, conversation, user, manager, query):
    Conversation.objects.create(owner=user, title="Sourdough")
    response = signed_in.get(reverse("chat:index"), {"q": query})
    listed = [c.title for c in response.context["conversations"]]
    assert listed == ["Rust lifetimes"]


def test_it_lists_everything_without_a_search(signed_in, conversation, user, manager):
    Conversation.objects.create(owner=user, title="Sourdough")
    response = signed_in.get(reverse("chat:index"))
    assert {c.title for c in response.context["conversations"]} == {"Rust lifetimes", "Sourdough"}


def test_it_ignores_a_search_that_is_too_long(signed_in, conversation, manager):
    response = signed_in.get(reverse("chat:index"), {"q": "x" * 500})
    assert response.status_code == 200
    assert response.context["search_form"].errors["q"]


# --- Export -----------------------------------------------------------------------------------------------------


def test_it_exports_a_conversation_as_markdown(signed_in, conversation):
    response = signed_in.get(reverse("chat:export", args=[conversation.pk, "md"]))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/markdown")
    assert response["Content-Disposition"] == f'attachment; filename="rust-lifetimes-{conversation.pk}.md"'
    text = response.content.decode()
    assert text.startswith("# Rust lifetimes\n")
    assert "## User\n\nWhat is a lifetime?" in text
    assert "## Assistant\n\nA **lifetime** is a scope." in text


def test_it_exports_a_conversation_as_json(signed_in, conversation):
    response = signed_in.get(reverse("chat:export", args=[conversation.pk, "json"]))
    assert response["Content-Disposition"].startswith("attachment;")
    data = json.loads(response.content)
    assert data["title"] == "Rust lifetimes"
    assert [(m["role"], m["content"]) for m in data["messages"]] == [
        ("user", "What is a lifetime?"), ("assistant", "A **lifetime** is a scope."),
    ]
    assert data["messages"][1]["decode_tokens_per_s"] == 88.25


def test_it_answers_404_for_an_unknown_export_format(signed_in, conversation):
    assert signed_in.get(reverse("chat:export", args=[conversation.pk, "html"])).status_code == 404


def test_it_marks_a_stopped_reply_in_the_markdown_export(signed_in, conversation):
    Message.objects.create(conversation=conversation, role=Role.ASSISTANT, content="half", status=Status.STOPPED)
    text = signed_in.get(reverse("chat:export", args=[conversation.pk, "md"])).content.decode()
    assert "## Assistant (Stopped)\n\nhalf" in text


# --- Models page (staff) --------------------------------------------------------------------------------------


def test_it_refuses_the_models_page_to_non_staff(signed_in):
    assert signed_in.get(reverse("chat:models")).status_code == 403
    assert signed_in.post(reverse("chat:model_load"), {}).status_code == 403
    assert signed_in.post(reverse("chat:model_unload")).status_code == 403
    assert signed_in.get(reverse("chat:models_status")).status_code == 403
    assert signed_in.get(reverse("chat:models_workers")).status_code == 403


class FakePool(FakeManager):
    """The manager as it is with REDIS_URL: workers on other machines, one with a hostile name and error."""

    def status(self):
        hostile = {"name": '<img src=x onerror="alert(1)">', "host": "<b>box</b>", "model_file": "m.gguf",
                   "state": "error", "error": "<script>alert(2)</script>", "gpu": "", "vram_free_bytes": None,
                   "vram_total_bytes": None, "n_gpu_layers": None, "n_layers": None, "queue_length": 0,
                   "busy": False, "served": 0, "last_seen_s": 0.4}
        ready = {**hostile, "name": "gpu-box-1", "host": "gpu-box", "state": "ready", "error": None,
                 "gpu": "NVIDIA GeForce RTX 4060", "vram_free_bytes": 6 * 2**30, "vram_total_bytes": 8 * 2**30,
                 "n_gpu_layers": 33, "n_layers": 33, "queue_length": 1, "busy": True, "served": 12}
        return {**super().status(), "mode": "redis", "workers": [hostile, ready]}


def test_staff_see_the_workers_with_redis_and_their_text_is_escaped(web, staff, monkeypatch, models_dir):
    monkeypatch.setattr("chat.worker.get_manager", FakePool)
    web.force_login(staff)
    page = web.get(reverse("chat:models")).content.decode()
    table = web.get(reverse("chat:models_workers")).content.decode()
    for html in (page, table):
        assert 'data-worker="gpu-box-1"' in html and "NVIDIA GeForce RTX 4060" in html
        assert "6.0\xa0GB / 8.0\xa0GB" in html and "1 (busy)" in html
        assert "<img src=x" not in html and "<script>alert" not in html and "<b>box" not in html
        assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in html
        assert "&lt;script&gt;alert(2)&lt;/script&gt;" in html
    assert 'id="unload-button"' not in page and "manage.py llmworker" in page
    assert '"workersUrl": "/chat/models/workers/"' in page


def test_it_lists_model_files_with_their_header_facts(web, staff, manager, models_dir):
    web.force_login(staff)
    response = web.get(reverse("chat:models"))
    assert response.status_code == 200
    rows = {row["name"]: row for row in response.context["rows"]}
    default = default_model_file()
    assert default is not None, "the default SmolLM2 model is installed by `make run`"
    smol = rows[default.name]
    assert smol["error"] == ""
    assert smol["info"].architecture.arch == "llama"
    assert smol["info"].quant == "Q4_1"
    assert smol["size"] == default.stat().st_size
    assert smol["suggested"] is not None and smol["n_layers"] == smol["info"].architecture.n_layer + 1


def test_it_shows_a_malformed_gguf_as_an_error_in_its_row(web, staff, manager, models_dir):
    web.force_login(staff)
    response = web.get(reverse("chat:models"))
    assert response.status_code == 200
    rows = {row["name"]: row for row in response.context["rows"]}
    assert "truncated or malformed" in rows["broken.gguf"]["error"]
    assert "not a GGUF file" in rows["notes.gguf"]["error"]
    assert str(models_dir) not in rows["notes.gguf"]["error"]
    assert "not a GGUF file" in response.content.decode()


def test_it_says_when_there_is_no_gpu(web, staff, manager, models_dir, monkeypatch):
    monkeypatch.setattr("chat.model_views.detect_gpus", lambda: [])
    web.force_login(staff)
    page = web.get(reverse("chat:models")).content.decode()
    assert "No NVIDIA GPU found" in page


def test_it_shows_the_worker_status(web, staff, manager, models_dir):
    web.force_login(staff)
    page = web.get(reverse("chat:models")).content.decode()
    assert "loaded.gguf" in page
    assert 'data-state="ready"' in page


def test_it_loads_a_model_and_keeps_the_setting(web, staff, manager, models_dir):
    web.force_login(staff)
    name = default_model_file().name
    ModelConfig.objects.create(file_name="other.gguf", is_active=True)
    response = web.post(reverse("chat:model_load"), {
        "file_name": name, "n_gpu_layers": "12", "n_ctx": "2048", "flash_attn": "on", "kv_type": "q8_0",
    })
    assert response.status_code == 302
    assert manager.loads == [(name, {"n_gpu_layers": 12, "n_ctx": 2048, "flash_attn": True, "kv_type": "q8_0",
                                     "parallel": django_settings.LLMSITE_PARALLEL})]
    config = ModelConfig.objects.get(file_name=name)
    assert (config.n_gpu_layers, config.n_ctx, config.flash_attn, config.kv_type, config.is_active) == (
        12, 2048, True, "q8_0", True)
    assert not ModelConfig.objects.get(file_name="other.gguf").is_active


def test_a_load_from_the_advisor_opens_the_chat(web, staff, manager, models_dir):
    web.force_login(staff)
    name = default_model_file().name
    response = web.post(reverse("chat:model_load"), {"file_name": name, "n_gpu_layers": "0", "n_ctx": "2048",
                                                     "kv_type": "f16", "then": "chat"})
    assert response.status_code == 302 and response["Location"] == reverse("chat:index")
    assert manager.loads == [(name, {"n_gpu_layers": 0, "n_ctx": 2048, "flash_attn": False, "kv_type": "f16",
                                     "parallel": django_settings.LLMSITE_PARALLEL})]


@pytest.mark.parametrize(("typed", "stored"), [("auto", None), ("", None), ("-1", -1), (" AUTO ", None)])
def test_it_understands_auto_and_all_layers(web, staff, manager, models_dir, typed, stored):
    web.force_login(staff)
    name = default_model_file().name
    web.post(reverse("chat:model_load"), {"file_name": name, "n_gpu_layers": typed, "n_ctx": "4096",
                                             "kv_type": "f16"})
    assert ModelConfig.objects.get(file_name=name).n_gpu_layers == stored
    assert manager.loads[0][1]["n_gpu_layers"] == stored


@pytest.mark.parametrize(
    ("field", "value"),
    [("n_gpu_layers", "lots"), ("n_gpu_layers", "-2"), ("n_ctx", "100"), ("kv_type", "q2"), ("file_name", "x.gguf"),
     ("file_name", "../etc/passwd")],
)
def test_it_rejects_bad_load_settings_with_a_form_error(web, staff, manager, models_dir, field, value):
    web.force_login(staff)
    data = {"file_name": default_model_file().name, "n_gpu_layers": "auto", "n_ctx": "4096", "kv_type": "f16",
            field: value}
    response = web.post(reverse("chat:model_load"), data)
    assert response.status_code == 200
    assert field in response.context["bound_form"].errors
    assert manager.loads == []
    assert not ModelConfig.objects.exists()


def test_it_shows_a_load_error_on_the_page(web, staff, models_dir, monkeypatch):
    class Refusing(FakeManager):
        def load(self, file_name, **settings):
            raise ValueError("that file is gone")

    monkeypatch.setattr("chat.worker.get_manager", Refusing)
    web.force_login(staff)
    response = web.post(
        reverse("chat:model_load"),
        {"file_name": default_model_file().name, "n_gpu_layers": "0", "n_ctx": "4096", "kv_type": "f16"},
        follow=True,
    )
    assert "that file is gone" in response.content.decode()


def test_it_unloads_the_model(web, staff, manager, models_dir):
    ModelConfig.objects.create(file_name="x.gguf", is_active=True)
    web.force_login(staff)
    response = web.post(reverse("chat:model_unload"))
    assert response.status_code == 302
    assert manager.unloads == 1
    assert not ModelConfig.objects.filter(is_active=True).exists()


def test_it_reports_the_worker_status_as_json(web, staff, manager):
    web.force_login(staff)
    data = web.get(reverse("chat:models_status")).json()
    assert data["worker"]["state"] == "ready"
    assert isinstance(data["gpus"], list)


# --- Admin ------------------------------------------------------------------------------------------------------------


def test_the_admin_edits_model_settings_but_shows_no_conversation(web, conversation):
    admin = get_user_model().objects.create_superuser("root", "root@example.com", PASSWORD)
    ModelConfig.objects.create(file_name="a.gguf")
    web.force_login(admin)
    assert web.get(reverse("admin:chat_modelconfig_changelist")).status_code == 200
    for url in ("/admin/chat/conversation/?q=lifetime", f"/admin/chat/conversation/{conversation.pk}/change/",
                "/admin/chat/message/"):
        assert web.get(url).status_code == 404, url
    assert "/admin/chat/conversation/" not in web.get("/admin/").content.decode()
