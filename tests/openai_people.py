"""People with API keys on a running site (tests/conftest.py's RunningSite), for the /v1/ tests."""

from __future__ import annotations

import json

PEOPLE_CODE = """
import json
from django.conf import settings
from django.contrib.auth import get_user_model, SESSION_KEY, BACKEND_SESSION_KEY, HASH_SESSION_KEY
from django.contrib.sessions.backends.db import SessionStore
from chat.openai_api.keys import create_key
people = []
for name in {names!r}:
    u = get_user_model().objects.create_user(name, password='a long test password', is_staff={staff})
    s = SessionStore(); s[SESSION_KEY] = str(u.pk)
    s[BACKEND_SESSION_KEY] = settings.AUTHENTICATION_BACKENDS[0]
    s[HASH_SESSION_KEY] = u.get_session_auth_hash(); s.save()
    row, key = create_key(u, 'key of ' + name, store_conversations={store})
    people.append({{'username': name, 'key': key, 'key_id': row.pk,
                   'cookie': settings.SESSION_COOKIE_NAME + '=' + s.session_key}})
print('PEOPLE=' + json.dumps(people))
"""


def api_people(site, names: list[str], *, staff: bool = False, store: bool = False) -> dict[str, dict]:
    """New people, each signed in (a Cookie header value) and with an API key: {username: {key, cookie, ...}}."""
    output = site.manage("shell", "-c", PEOPLE_CODE.format(names=list(names), staff=staff, store=store))
    line = next(line for line in output.splitlines() if line.startswith("PEOPLE="))
    return {person["username"]: person for person in json.loads(line[len("PEOPLE="):])}


def shell_json(site, code: str):
    """Run Python in the site's `manage.py shell`; its last line printed, as JSON."""
    return json.loads(site.manage("shell", "-c", code).strip().splitlines()[-1])
