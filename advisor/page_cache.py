"""The advisor's caches: computed answers, and rendered pages, keyed by their inputs and the catalog version.

An answer depends on the form's cleaned inputs and the catalog; a rendered page also on the language, on
whether the visitor is staff, and on this server's latest measurement. All of it goes into the key, so a
staff edit in the admin (a new catalog version) or a new measurement is seen by the next request, with no
invalidation step to forget. Old entries are dropped by age and count (settings.CACHES["advisor"]).
"""

import hashlib
import json
import time

from django.core.cache import caches
from django.db import models
from django.db.models import Max
from django.db.models.signals import post_delete, post_save
from django.middleware.csrf import get_token
from django.utils.safestring import mark_safe
from django.utils.translation import get_language

from advisor import recommend
from advisor.models import GPU, KnownFile, LanguageModel, Measurement, Quantization

# Rendered pages are shared between visitors, so forms in them carry this in place of the CSRF token; each
# response puts the visitor's own token in its place.
CSRF_PLACEHOLDER = "__llmsite_csrf_token__"


def store():
    return caches["advisor"]


def _plain(value):
    if isinstance(value, models.Model):
        return f"{value._meta.label}:{value.pk}"
    return str(value)


def inputs_key(cleaned_data: dict) -> str:
    """The form's cleaned inputs, all of them: a field added to the form joins the key by itself."""
    canonical = json.dumps(cleaned_data, sort_keys=True, default=_plain)
    return hashlib.sha256(canonical.encode()).hexdigest()


def answer_key(version: str, cleaned_data: dict) -> str:
    return f"answer:{version}:{inputs_key(cleaned_data)}"


def cached_answer(version: str, cleaned_data: dict):
    return store().get(answer_key(version, cleaned_data))


def compute_answer(version: str, cleaned_data: dict, question) -> dict:
    answer = recommend.answer(question, recommend.snapshot(version))
    store().set(answer_key(version, cleaned_data), answer)
    return answer


# The catalog version and the latest measurement take five queries; a busy page asks for them on every
# request. They are kept for MEMO_S seconds, and forgotten at once when this process saves or deletes a
# catalog row or a measurement (an admin edit, a finished reply). Changes made by another process (a
# catalog import, a second web process) are seen within MEMO_S.
MEMO_S = 2.0
_memo: dict = {}
_per_measurement: dict = {}   # per_measurement() below


def _memoized(name: str, compute):
    now = time.monotonic()
    known = _memo.get(name)
    if known is not None and known[1] > now:
        return known[0]
    value = compute()
    _memo[name] = (value, now + MEMO_S)
    return value


def forget(**_kwargs) -> None:
    _memo.clear()
    _per_measurement.clear()


for _model in (GPU, LanguageModel, Quantization, KnownFile, Measurement):
    post_save.connect(forget, sender=_model, dispatch_uid=f"advisor-page-cache-{_model.__name__}-saved")
    post_delete.connect(forget, sender=_model, dispatch_uid=f"advisor-page-cache-{_model.__name__}-deleted")


def catalog_version() -> str:
    return _memoized("catalog", recommend.catalog_version)


def snapshot() -> "recommend.CatalogSnapshot":
    """recommend.snapshot(), the catalog version read through the memo above."""
    return recommend.snapshot(catalog_version())


_per_catalog: dict = {}


def per_catalog(name: str, compute):
    """compute(), read once per catalog version (lists the pages draw from the catalog)."""
    return _read_through(_per_catalog, name, catalog_version(), compute)


def _read_through(memo: dict, name: str, key, compute):
    """memo[name]'s value if it was computed for `key`, else compute() kept for `key`."""
    known = memo.get(name)
    if known is None or known[0] != key:
        known = memo[name] = (key, compute())
    return known[1]


def gpus_by_slug() -> dict:
    """The catalog's GPUs by slug, read once per catalog version: the form checks the GPU a question names
    and the answer reads its figures on every request, a query each (and, under daphne, a new database
    connection each: a quarter of a repeated answer page's time)."""
    return snapshot().gpus


def known_files() -> dict:
    """(model slug, quant name) -> where the catalog says that file is published; read again when a
    KnownFile is saved or deleted in this process, else at most MEMO_S seconds old."""
    return _memoized("known-files", lambda: {
        (k.model.slug, k.quant.name): {"repo": k.repo, "filename": k.filename, "size_bytes": k.size_bytes}
        for k in KnownFile.objects.exclude(repo="").select_related("model", "quant")})


def per_measurement(name: str, compute):
    """compute(), read again only when this server has measured a reply since (latest_measurement())."""
    return _read_through(_per_measurement, name, latest_measurement(), compute)


def latest_measurement() -> int:
    """Changes whenever this server measures a reply (answers show 'Measured here')."""
    return _memoized("measurement", lambda: Measurement.objects.aggregate(last=Max("pk"))["last"] or 0)


def page_key(kind: str, version: str, cleaned_data: dict | None, request, *, measured: bool) -> str:
    parts = [kind, version, get_language() or "", "staff" if request.user.is_staff else "public",
             inputs_key(cleaned_data) if cleaned_data is not None else "unbound"]
    if measured:
        parts.append(str(latest_measurement()))
    return "page:" + ":".join(parts)


def cached_page(key: str):
    return store().get(key)


def remember_page(key: str, page: dict) -> None:
    store().set(key, page)


def with_csrf(html: str, request) -> str:
    """A cached page's HTML with this visitor's CSRF token where the placeholder stands."""
    if CSRF_PLACEHOLDER in html:
        html = html.replace(CSRF_PLACEHOLDER, get_token(request))
    return mark_safe(html)  # noqa: S308 - rendered by Django's templates, autoescaped when it was made
