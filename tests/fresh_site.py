"""A site of its own for browser tests that need a fresh install or change the catalog.

The session's shared `site` (tests/conftest.py) is left as other tests expect it: no hostile rows in its
catalog, and whatever accounts those tests create.
"""

import sys

from tests.conftest import RunningSite, prepare_data_dir


def start_fresh_site(tmp_path_factory, name: str, env: dict | None = None) -> RunningSite:
    data_dir = tmp_path_factory.mktemp(name)
    running = RunningSite(data_dir, [sys.executable, "-m", "llmsite.serve"], env=env)
    prepare_data_dir(data_dir, running.env)
    return running.start()


def create_superuser(site: RunningSite, username: str, password: str) -> None:
    site.manage("shell", "-c", (
        "from django.contrib.auth import get_user_model\n"
        f"get_user_model().objects.create_superuser({username!r}, 'staff@example.invalid', {password!r})\n"
    ))


def sign_in(page, site: RunningSite, username: str, password: str, next_path: str = "/") -> None:
    page.goto(f"{site.url}/accounts/login/?next={next_path}")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("#login-form input[type=submit]")
    page.wait_for_load_state()
