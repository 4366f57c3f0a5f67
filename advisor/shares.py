"""Short permanent links to answers: random slugs, one per question and catalog version."""

import secrets

from django.db import IntegrityError, transaction

from advisor.decorate import DECORATIONS
from advisor.models import SharedAnswer


def new_slug() -> str:
    # 8 random URL-safe characters: about 48 bits, not guessable, not a counter.
    return secrets.token_urlsafe(6)


def _storable(answer: dict) -> dict:
    """The answer without the view's decorations (bars, measurements)."""
    clean = dict(answer)
    for key in ("results", "almost", "alternatives"):
        clean[key] = [{k: v for k, v in row.items() if k not in DECORATIONS}
                      for row in answer[key]]
    return clean


def share_for(question, answer) -> SharedAnswer:
    key = question.key()
    existing = SharedAnswer.objects.filter(inputs_key=key, catalog_version=answer["catalog_version"]).first()
    if existing:
        return existing
    for _attempt in range(5):
        try:
            with transaction.atomic():
                return SharedAnswer.objects.create(
                    slug=new_slug(), inputs=question.as_dict(), inputs_key=key,
                    answer=_storable(answer), catalog_version=answer["catalog_version"],
                )
        except IntegrityError:  # a slug collision, or the same answer shared at the same moment
            existing = SharedAnswer.objects.filter(inputs_key=key, catalog_version=answer["catalog_version"]).first()
            if existing:
                return existing
    raise RuntimeError("could not allocate a share slug")
