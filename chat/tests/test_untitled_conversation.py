"""A conversation without a title (what "+ New conversation" makes) on every page that shows one.

Its title falls back to "New conversation". That text once came back as a lazy translation object from
`Conversation.__str__`, which Python refuses: every page showing the conversation answered 500.
"""

import json

import pytest
from django.apps import apps
from django.contrib.auth import get_user_model
from django.test import Client
from django.urls import reverse
from django.utils import translation

from chat.models import Conversation, Message, Role

pytestmark = pytest.mark.django_db

PASSWORD = "a-long-test-password"


@pytest.fixture
def person():
    return get_user_model().objects.create_user("newcomer", password=PASSWORD)


@pytest.fixture
def web(person):
    client = Client()
    client.force_login(person)
    return client


@pytest.fixture
def untitled(web, person) -> Conversation:
    """Made by the sidebar's "+ New conversation" button, and its redirect followed."""
    response = web.post(reverse("chat:new"), follow=True)
    assert response.status_code == 200
    conversation = Conversation.objects.get(owner=person)
    assert conversation.title == ""
    assert response.redirect_chain == [(reverse("chat:conversation", args=[conversation.pk]), 302)]
    return conversation


def test_new_conversation_opens_its_page(untitled, web):
    html = web.get(reverse("chat:conversation", args=[untitled.pk])).content.decode()
    assert '<h1 id="chat-title" class="chat-title">New conversation</h1>' in html


def test_starting_with_a_prompt_opens_its_page(web, person):
    response = web.post(reverse("chat:new"), {"system_prompt": "Answer briefly."}, follow=True)
    assert response.status_code == 200
    assert Conversation.objects.get(owner=person).system_prompt == "Answer briefly."
    assert "New conversation" in response.content.decode()


@pytest.mark.parametrize(
    ("name", "extra", "query", "shown"),
    [
        ("chat:index", None, {}, "New conversation</a>"),
        ("chat:index", None, {"q": "nothing matches this"}, "No conversation matches."),
        ("chat:conversation", (), {}, "New conversation</a>"),
        ("chat:conversation", (), {"q": "zzz"}, 'class="chat-title">New conversation</h1>'),
        ("chat:rename", (), {}, '<input type="text" name="title"'),
        ("chat:delete", (), {}, "Delete “New conversation” and all its messages?"),
    ],
)
def test_every_page_shows_an_untitled_conversation(untitled, web, name, extra, query, shown):
    args = None if extra is None else [untitled.pk, *extra]
    response = web.get(reverse(name, args=args), query)
    assert response.status_code == 200
    assert shown in response.content.decode()


def test_the_untitled_conversation_is_in_the_sidebar_in_spanish(untitled, web):
    html = web.get(reverse("chat:index"), headers={"accept-language": "es"}).content.decode()
    assert f'href="{reverse("chat:conversation", args=[untitled.pk])}" class="conversation-link">Nueva conversación<' \
        in html


def test_both_exports_of_an_untitled_conversation(untitled, web):
    Message.objects.create(conversation=untitled, role=Role.USER, content="Hello?")
    markdown = web.get(reverse("chat:export", args=[untitled.pk, "md"]))
    assert markdown.status_code == 200
    assert markdown.content.decode().startswith("# New conversation\n")
    assert f'filename="new-conversation-{untitled.pk}.md"' in markdown["Content-Disposition"]
    exported = web.get(reverse("chat:export", args=[untitled.pk, "json"]))
    assert exported.status_code == 200
    assert json.loads(exported.content)["title"] == "New conversation"


def test_saving_the_system_prompt_of_an_untitled_conversation(untitled, web):
    response = web.post(reverse("chat:system_prompt", args=[untitled.pk]), {"system_prompt": "Be terse."},
                        follow=True)
    assert response.status_code == 200
    untitled.refresh_from_db()
    assert untitled.system_prompt == "Be terse."


def test_deleting_an_untitled_conversation(untitled, web):
    response = web.post(reverse("chat:delete", args=[untitled.pk]), follow=True)
    assert response.status_code == 200
    assert "Deleted “New conversation”." in response.content.decode()
    assert not Conversation.objects.filter(pk=untitled.pk).exists()


def test_the_admin_deletes_the_owner_of_an_untitled_conversation(untitled):
    """Conversations are not in the admin (people's chats are their own); the owner's delete page counts them."""
    staff = Client()
    staff.force_login(get_user_model().objects.create_superuser("root", "root@example.com", PASSWORD))
    delete = staff.get(reverse("admin:auth_user_delete", args=[untitled.owner.pk]))
    assert delete.status_code == 200
    response = staff.post(reverse("admin:auth_user_delete", args=[untitled.owner.pk]), {"post": "yes"})
    assert response.status_code == 302
    assert not Conversation.objects.filter(pk=untitled.pk).exists()


@pytest.mark.parametrize("language", ["en", "es"])
def test_every_models_str_is_a_real_str_even_when_blank(language):
    """Each model of the project, with only its defaults, gives str() a str (no lazy translation)."""
    project_models = [model for app in ("chat", "advisor", "accounts")
                      for model in apps.get_app_config(app).get_models()]
    assert len(project_models) >= 8
    with translation.override(language):
        for model in project_models:
            text = str(model())  # raises TypeError when __str__ returns anything but a str
            assert type(text) is str, model
        assert str(Conversation()) == {"en": "New conversation", "es": "Nueva conversación"}[language]
