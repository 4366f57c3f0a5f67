"""Per-address budgets for the advisor's uncached work, and the one place that names the client's address."""

import math
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache


def client_address(request) -> str:
    """The address requests are counted by. REMOTE_ADDR is what the server trusts (forwarded headers count
    only from configured proxies, see llmsite/serve.py)."""
    return request.META.get("REMOTE_ADDR") or "unknown"


@dataclass(frozen=True)
class Budget:
    name: str
    limit: int
    window_s: int


def work_budget() -> Budget:
    return Budget("work", settings.LLMSITE_ADVISOR_LIMIT, settings.LLMSITE_ADVISOR_LIMIT_WINDOW_S)


def share_budget() -> Budget:
    return Budget("share", settings.LLMSITE_ADVISOR_SHARES_PER_HOUR, 3600)


def spend(request, budget: Budget, cost: int = 1) -> int | None:
    """Take `cost` units from the address's budget for the current window.

    Returns None when they were there, else the seconds until the window ends (for Retry-After). A fixed
    window counted with the cache's atomic incr: at most twice the limit can pass around a window's edge,
    which is fine for keeping one address from taking the whole server.
    """
    now = time.time()
    window = int(now // budget.window_s)
    key = f"advisor-limit:{budget.name}:{client_address(request)}:{window}"
    cache.add(key, 0, timeout=budget.window_s + 1)
    try:
        used = cache.incr(key, cost)
    except ValueError:  # expired between add and incr
        cache.set(key, cost, timeout=budget.window_s + 1)
        used = cost
    if used <= budget.limit:
        return None
    return max(1, math.ceil((window + 1) * budget.window_s - now))
