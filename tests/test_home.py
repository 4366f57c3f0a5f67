from django.test import Client


def test_home_offers_chat_and_the_advisor(client: Client):
    html = client.get("/").content.decode()
    assert "Chat" in html
    assert "What can my GPU run?" in html


def test_home_speaks_spanish_when_the_browser_asks(client: Client):
    html = client.get("/", HTTP_ACCEPT_LANGUAGE="es").content.decode()
    assert "¿Qué puede ejecutar mi GPU?" in html
    assert '<html lang="es">' in html


def test_pages_have_no_inline_scripts_or_styles(client: Client):
    html = client.get("/").content.decode()
    assert "<script>" not in html and "<script " not in html.replace('<script src="', "")
    assert " style=" not in html and "<style" not in html


def test_healthz_reports_database_worker_and_gpus(client: Client, db):
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json()
    assert body["database"] is True
    assert body["status"] == "ok"
    assert set(body["worker"]) == {"state"}, "anonymous callers get states only (issue 11)"
    assert all(set(gpu) == {"name"} for gpu in body["gpus"])


def test_healthz_gives_staff_the_details(client: Client, db):
    from django.contrib.auth import get_user_model

    client.force_login(get_user_model().objects.create_superuser("root", "r@example.invalid", "x-long-pw-12"))
    body = client.get("/healthz").json()
    assert {"state", "pid", "error", "model_file"} <= set(body["worker"])
    assert body["gpus"] == [] or {"name", "vram_total_bytes"} <= set(body["gpus"][0])
