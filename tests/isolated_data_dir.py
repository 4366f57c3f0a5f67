"""pytest plugin, loaded with `-p` before Django's settings are read (see pyproject.toml).

Settings read LLMSITE_DATA_DIR at import; pointing it at a fresh temporary folder here means a test run
never touches ./var (the user's database, secret key and models).
"""

import os
import tempfile

if "LLMSITE_DATA_DIR" not in os.environ:
    os.environ["LLMSITE_DATA_DIR"] = tempfile.mkdtemp(prefix="llmsite-test-data-")
    # whitenoise warns about a missing static root; the test client does not need collected files.
    os.makedirs(os.path.join(os.environ["LLMSITE_DATA_DIR"], "static"))
