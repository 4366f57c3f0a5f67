"""A hostile file in the models folder is that file's error, never a 500 (issue 11, finding 10).

A tensor named `blk.<5000 digits>` made int() raise ValueError past Python's integer-string limit, outside
the header reader's error handling; /advisor/, share links and model pages then answered 500 to anyone.
Every header-reading path now turns any failure into the file's error state: read_gguf raises only
GGUFError, the advisor's "this server has this file" matching skips the file, and the staff Models page
shows the error in the file's row.
"""

import concurrent.futures
import os

import pytest
from django.urls import reverse

from advisor import recommend
from advisor.forms import AdvisorForm
from advisor.gguf_info import GGUFError, read_gguf
from advisor.local_files import _HEADERS, local_files
from advisor.shares import share_for
from advisor.tests.gguf_factory import write_tiny_gguf

pytestmark = pytest.mark.django_db

RTX_4060 = "nvidia-geforce-rtx-4060"
ANSWER = {"gpu": RTX_4060, "ctx": "4096"}
HUGE_LAYER = "blk." + "9" * 5000 + ".attn_q.weight"


def hostile_tensor(folder, name: str, file_name: str = "hostile.gguf"):
    return write_tiny_gguf(folder / file_name, extra_tensors={name: (4,)})


def make_fifo(folder):
    os.mkfifo(folder / "pipe.gguf")


def make_folder(folder):
    (folder / "folder.gguf").mkdir()


def make_undecodable_name(folder):
    write_tiny_gguf(folder / os.fsdecode(b"caf\xe9.gguf"))


HOSTILE = {
    "a 5000-digit layer number": lambda folder: hostile_tensor(folder, HUGE_LAYER),
    "a layer number in Arabic-Indic digits": lambda folder: hostile_tensor(folder, "blk.\u0663.attn_q.weight"),
    "a layer beyond block_count": lambda folder: hostile_tensor(folder, "blk.7.attn_q.weight"),
    "a FIFO named .gguf": make_fifo,
    "a folder named .gguf": make_folder,
    "a file name that is not UTF-8": make_undecodable_name,
}


@pytest.fixture
def models_dir(settings, tmp_path):
    settings.MODELS_DIR = tmp_path
    settings.STORAGES = {**settings.STORAGES,
                         "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}
    _HEADERS.clear()
    yield tmp_path
    _HEADERS.clear()


def test_a_tensor_named_with_5000_digits_is_a_gguf_error(tmp_path):
    path = hostile_tensor(tmp_path, HUGE_LAYER)
    with pytest.raises(GGUFError, match="is beyond block_count") as raised:
        read_gguf(path)
    assert len(str(raised.value)) < 500, "the message names the tensor, shortened"


def test_a_layer_number_in_other_scripts_digits_is_not_read_as_a_layer(tmp_path):
    plain = read_gguf(write_tiny_gguf(tmp_path / "plain.gguf")).architecture
    info = read_gguf(hostile_tensor(tmp_path, "blk.\u0663.attn_q.weight")).architecture
    assert info.other_bytes == plain.other_bytes + 16  # counted with the other tensors, not as layer 3
    assert info.layer_bytes == plain.layer_bytes


def test_a_fifo_is_refused_without_waiting_for_a_writer(tmp_path):
    make_fifo(tmp_path)
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as thread:
        reading = thread.submit(read_gguf, tmp_path / "pipe.gguf")
        try:
            with pytest.raises(GGUFError, match="not a regular file"):
                reading.result(timeout=30)
        finally:
            if not reading.done():  # a reader stuck in open(): a writer lets it go, so the test ends
                os.close(os.open(tmp_path / "pipe.gguf", os.O_WRONLY | os.O_NONBLOCK))


def share_slug() -> str:
    form = AdvisorForm(ANSWER)
    assert form.is_valid(), form.errors
    question = form.question()
    return share_for(question, recommend.answer(question)).slug


@pytest.mark.parametrize("hostile", list(HOSTILE))
def test_public_pages_answer_200_with_a_hostile_file_in_the_models_folder(client, models_dir, hostile):
    """The pages that show "this server has this file" (answers, share links, model pages), anonymously."""
    write_tiny_gguf(models_dir / "good.gguf")
    HOSTILE[hostile](models_dir)
    pages = [reverse("advisor:index"), reverse("advisor:index") + "?gpu=" + RTX_4060 + "&ctx=4096",
             reverse("advisor:shared", args=[share_slug()]),
             reverse("advisor:model", args=["llama-3.2-1b-instruct"]) + "?gpu=" + RTX_4060]
    for page in pages:
        response = client.get(page)
        assert response.status_code == 200, f"{page} answered {response.status_code}"
    assert "good.gguf" in [f.name for f in local_files(models_dir)]


@pytest.mark.parametrize("hostile", ["a 5000-digit layer number", "a layer beyond block_count"])
def test_the_models_page_shows_the_hostile_file_as_its_rows_error(client, django_user_model, models_dir, hostile,
                                                                 monkeypatch):
    monkeypatch.setattr("chat.worker.worker_status", lambda: {"state": "stopped", "error": None})
    monkeypatch.setattr("chat.model_views.worker_status", lambda: {"state": "stopped", "error": None})
    HOSTILE[hostile](models_dir)
    client.force_login(django_user_model.objects.create_user("grace", password="a-long-pass", is_staff=True))
    response = client.get(reverse("chat:models"))
    assert response.status_code == 200
    rows = {row["name"]: row for row in response.context["rows"]}
    assert rows["hostile.gguf"]["error"] and rows["hostile.gguf"]["info"] is None
    assert str(models_dir) not in rows["hostile.gguf"]["error"]
