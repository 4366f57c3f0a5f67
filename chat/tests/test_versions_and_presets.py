"""Reply versions as stored, shown and exported; titles cut at a word; presets and the password change pages."""

import json

import pytest
from django.urls import reverse

from chat.models import Conversation, Message, Preset, Role, selected_path
from chat.services import _title
from chat.tests import test_views

pytestmark = pytest.mark.django_db
PASSWORD = test_views.PASSWORD
# The view tests' fixtures: a signed-in client, people, static files without collectstatic, no llama.cpp process.
web, user, other_user, signed_in, manager = (test_views.web, test_views.user, test_views.other_user,
                                             test_views.signed_in, test_views.manager)
plain_static_storage = test_views.plain_static_storage


@pytest.fixture
def versions(user):
    """Question q1 with replies a1 and a2 (a2 shown), then q1's edited version q2 with reply b1 (q2 shown)."""
    conv = Conversation.objects.create(owner=user, title="Fruit")
    q1 = Message.objects.create(conversation=conv, role=Role.USER, content="Name a fruit.")
    a1 = Message.objects.create(conversation=conv, role=Role.ASSISTANT, content="Apple.", selected=False)
    a2 = Message.objects.create(conversation=conv, role=Role.ASSISTANT, content="Pear.", parent=q1)
    q1.selected = False
    q1.save()
    q2 = Message(conversation=conv, role=Role.USER, content="Name a vegetable.")
    q2.save(first_version=True)
    b1 = Message.objects.create(conversation=conv, role=Role.ASSISTANT, content="Leek.", finish_reason="length")
    return conv, q1, a1, a2, q2, b1


def test_a_message_without_a_parent_follows_the_last_one_shown(versions):
    conv, q1, a1, a2, q2, b1 = versions
    assert a1.parent == q1 and a2.parent == q1 and q2.parent is None and b1.parent == q2
    path = selected_path(conv.messages.all())
    assert [(m.content, m.version, m.versions) for m in path] == [("Name a vegetable.", 2, 2), ("Leek.", 1, 1)]


def test_the_page_shows_the_selected_versions_with_their_count(signed_in, versions, manager):
    conv = versions[0]
    page = signed_in.get(reverse("chat:conversation", args=[conv.pk])).content.decode()
    assert "Name a vegetable." in page and "Leek." in page
    assert "Name a fruit." not in page and "Pear." not in page
    assert 'data-version="2" data-versions="2"' in page
    assert 'data-finish-reason="length"' in page and "Stopped at the length limit" in page


def test_both_exports_hold_every_version(signed_in, versions):
    conv, q1, a1, a2, q2, b1 = versions
    data = json.loads(signed_in.get(reverse("chat:export", args=[conv.pk, "json"])).content)
    assert [(m["id"], m["parent"], m["version"], m["versions"]) for m in data["messages"]] == [
        (q2.pk, None, 2, 2), (b1.pk, q2.pk, 1, 1)]
    assert data["messages"][1]["finish_reason"] == "length"
    assert {(m["id"], m["parent"], m["version"], m["versions"], m["selected"]) for m in data["other_versions"]} == {
        (q1.pk, None, 1, 2, False), (a1.pk, q1.pk, 1, 2, False), (a2.pk, q1.pk, 2, 2, True)}
    markdown = signed_in.get(reverse("chat:export", args=[conv.pk, "md"])).content.decode()
    assert "## User · version 2 of 2\n\nName a vegetable." in markdown
    assert "### Version 1 of 2 (not shown)\n\nName a fruit." in markdown
    assert "## Assistant (Stopped at the length limit)\n\nLeek." in markdown


def test_the_migration_links_existing_messages_into_one_path(user):
    from importlib import import_module

    from django.apps import apps

    migration = import_module("chat.migrations.0003_reply_versions_and_presets")
    conv = Conversation.objects.create(owner=user)
    ids = [Message.objects.create(conversation=conv, role=role, content=str(i)).pk
           for i, role in enumerate([Role.USER, Role.ASSISTANT, Role.USER])]
    Message.objects.filter(pk__in=ids).update(parent=None)  # as rows were before the migration
    migration.link_existing_messages(apps, None)
    assert list(Message.objects.filter(pk__in=ids).order_by("pk").values_list("parent_id", flat=True)) == [
        None, ids[0], ids[1]]


@pytest.mark.parametrize("content, title", [
    ("Short question?", "Short question?"),
    ("Please tell me everything you know about the migration habits of arctic terns today",
     "Please tell me everything you know about the migration…"),
    ("x" * 80, "x" * 59 + "…"),
    ("  spread   over\nlines  ", "spread over lines"),
])
def test_titles_are_cut_at_a_word(content, title):
    assert _title(content) == title and len(_title(content)) <= 60


def test_presets_are_created_refused_twice_made_default_edited_and_deleted(signed_in, user, other_user):
    url = reverse("chat:presets")
    response = signed_in.post(url, {"name": " Pirate ", "system_prompt": "Arr.", "temperature": "0.3",
                                    "is_default": "on"})
    assert response.status_code == 302
    pirate = Preset.objects.get(owner=user)
    assert (pirate.name, pirate.options, pirate.is_default) == ("Pirate", {"temperature": 0.3}, True)
    page = signed_in.post(url, {"name": "Pirate"}).content.decode()
    assert "You already have a preset named “Pirate”." in page
    assert signed_in.post(url, {"name": "Plain", "max_tokens": "99999"}).status_code == 200  # out of range
    signed_in.post(url, {"name": "Plain", "max_tokens": "64", "is_default": "on"})
    assert list(Preset.objects.filter(is_default=True).values_list("name", flat=True)) == ["Plain"]
    signed_in.post(reverse("chat:preset_default", args=[pirate.pk]))
    assert list(Preset.objects.filter(is_default=True).values_list("name", flat=True)) == ["Pirate"]
    signed_in.post(reverse("chat:preset_edit", args=[pirate.pk]), {"name": "Pirate", "system_prompt": "Yo ho.",
                                                                  "is_default": "on"})
    pirate.refresh_from_db()
    assert (pirate.system_prompt, pirate.options, pirate.is_default) == ("Yo ho.", {}, True)
    theirs = Preset.objects.create(owner=other_user, name="Theirs")
    for name in ("chat:preset_edit", "chat:preset_default", "chat:preset_delete"):
        assert signed_in.post(reverse(name, args=[theirs.pk]), {"name": "Mine"}).status_code == 404
    signed_in.post(reverse("chat:preset_delete", args=[pirate.pk]))
    assert list(Preset.objects.filter(owner=user).values_list("name", flat=True)) == ["Plain"]


def test_a_new_conversation_starts_with_the_default_preset(signed_in, user, manager):
    Preset.objects.create(owner=user, name="Pirate", system_prompt="Talk like a pirate.", is_default=True)
    page = signed_in.get(reverse("chat:index")).content.decode()
    assert "Talk like a pirate.</textarea>" in page
    signed_in.post(reverse("chat:new"))
    assert Conversation.objects.get(owner=user).system_prompt == "Talk like a pirate."


def test_the_password_change_page_changes_the_password(web, signed_in, user):
    assert signed_in.get(reverse("accounts:password_change")).status_code == 200
    response = signed_in.post(reverse("accounts:password_change"), {
        "old_password": PASSWORD, "new_password1": "another long password 71",
        "new_password2": "another long password 71"})
    assert response.status_code == 302 and response.url == reverse("accounts:password_change_done")
    user.refresh_from_db()
    assert user.check_password("another long password 71")
    web.logout()
    assert web.get(reverse("accounts:password_change")).status_code == 302  # signed out: to the sign-in page


def test_the_chat_names_the_model_by_its_catalog_name_not_its_file():
    from chat.views import model_display_name
    from chat.worker.files import list_model_files

    smol = next(path.name for path in list_model_files() if "SmolLM2" in path.name)
    assert model_display_name({"model_file": smol, "model_name": "Smollm2 135M 8k"}) == "SmolLM2 135M Instruct"
    assert model_display_name({"model_file": "elsewhere.gguf", "model_name": "Its general.name"}) == \
        "Its general.name"
    assert model_display_name({"model_file": "elsewhere.gguf"}) == "elsewhere.gguf"


def test_an_earlier_reply_regenerated_keeps_its_later_turns_on_the_old_branch_in_both_exports(signed_in, user):
    """q1 → a1 → q2 → b1, then a1 regenerated as a1b: the page shows q1, a1b; a1's branch keeps q2 and b1."""
    conv = Conversation.objects.create(owner=user, title="Branches")
    q1 = Message.objects.create(conversation=conv, role=Role.USER, content="Name a fruit.")
    a1 = Message.objects.create(conversation=conv, role=Role.ASSISTANT, content="Apple.")
    q2 = Message.objects.create(conversation=conv, role=Role.USER, content="And its colour?")
    b1 = Message.objects.create(conversation=conv, role=Role.ASSISTANT, content="Red.")
    a1.selected = False
    a1.save()
    a1b = Message.objects.create(conversation=conv, role=Role.ASSISTANT, content="Pear.", parent=q1)
    assert [m.content for m in selected_path(conv.messages.all())] == ["Name a fruit.", "Pear."]
    data = json.loads(signed_in.get(reverse("chat:export", args=[conv.pk, "json"])).content)
    assert [(m["id"], m["version"], m["versions"]) for m in data["messages"]] == [(q1.pk, 1, 1), (a1b.pk, 2, 2)]
    assert [(m["id"], m["parent"]) for m in data["other_versions"]] == [(a1.pk, q1.pk), (q2.pk, a1.pk),
                                                                        (b1.pk, q2.pk)]
    markdown = signed_in.get(reverse("chat:export", args=[conv.pk, "md"])).content.decode()
    assert ("## User\n\nName a fruit.\n\n## Assistant · version 2 of 2\n\nPear.\n\n"
            "### Version 1 of 2 (not shown)\n\nApple.\n\n#### User\n\nAnd its colour?\n\n#### Assistant\n\nRed.\n"
            ) in markdown
