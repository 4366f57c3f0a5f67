"""Which Redis worker writes a reply: a small pure rule over what the workers announced (no I/O, no clock).

A worker announces its model, the model files it could load, whether staff pinned its model, its slots
(replies at once), how many run and wait there, and the conversations whose KV cache its slots hold. The
pool adds how many replies it has sent each worker that have not ended (announcements lag behind).

The rule, in order:
1. a ready worker that has the model loaded and a free slot, the one holding the conversation's cache first,
   then the one with the most free slots;
2. a worker that has the model loaded or is loading it: the one with the shortest backlog (its reply waits);
3. a worker that has the file and is not pinned: it loads the model after its replies in progress finish.
   An idle one first, then the shortest backlog;
4. none: no live worker can write this reply.
"""

from __future__ import annotations

from dataclasses import dataclass, field

LIVE_STATES = ("starting", "loading", "ready")


@dataclass(frozen=True)
class WorkerView:
    """One worker as the chooser sees it."""

    name: str
    state: str
    model_file: str = ""
    models: frozenset = frozenset()  # model files in its folder: what it could load
    pinned: bool = False  # never swaps its model
    slots: int = 1  # replies at once
    running: int = 0  # replies being written (as announced)
    queued: int = 0  # replies waiting (as announced)
    in_hand: int = 0  # replies this web process sent it that have not ended
    conversations: frozenset = frozenset()  # conversations whose KV cache it holds

    @classmethod
    def from_announcement(cls, info: dict, in_hand: int = 0) -> WorkerView:
        """From a worker's `llm.announce` message; fields a worker of an older version leaves out get defaults."""
        def number(key, default):
            value = info.get(key)
            return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else default

        models = info.get("models")
        conversations = info.get("conversations")
        return cls(
            name=str(info.get("name", "")),
            state=str(info.get("state") or ""),
            model_file=str(info.get("model_file") or ""),
            models=frozenset(m for m in models if isinstance(m, str)) if isinstance(models, list) else frozenset(),
            pinned=info.get("pinned") is True,
            slots=max(1, number("slots", 1)),
            running=number("running", 0),
            queued=number("queue_length", 0),
            in_hand=in_hand,
            conversations=frozenset(c for c in conversations if isinstance(c, int))
            if isinstance(conversations, list) else frozenset(),
        )

    @property
    def live(self) -> bool:
        return self.state in LIVE_STATES

    @property
    def free_slots(self) -> int:
        return max(0, self.slots - max(self.running + self.queued, self.in_hand))

    @property
    def backlog(self) -> int:
        return max(self.running + self.queued, self.in_hand)

    def can_load(self, model_file: str) -> bool:
        return not self.pinned and model_file in self.models

    def offers(self) -> set:
        """The models a new conversation may choose because of this worker."""
        if not self.live:
            return set()
        served = {self.model_file} if self.model_file else set()
        return served if self.pinned else served | set(self.models)


@dataclass(frozen=True)
class Choice:
    worker: str
    swap: bool = False  # the worker loads the model first
    reason: str = ""


@dataclass
class WorkerChooser:
    workers: list = field(default_factory=list)  # WorkerView

    def choose(self, model_file: str, conversation: int | None = None) -> Choice | None:
        serving = [w for w in self.workers if w.live and w.model_file == model_file]
        free = [w for w in serving if w.state == "ready" and w.free_slots > 0]
        if free:
            best = min(free, key=lambda w: (conversation is None or conversation not in w.conversations,
                                            -w.free_slots, w.name))
            cached = conversation is not None and conversation in best.conversations
            return Choice(best.name, reason="cache" if cached else "free slot")
        if serving:
            best = min(serving, key=lambda w: (w.state != "ready", w.backlog, w.name))
            return Choice(best.name, reason="wait")
        loaders = [w for w in self.workers if w.live and w.can_load(model_file)]
        if loaders:
            best = min(loaders, key=lambda w: (w.backlog > 0, w.backlog, w.name))
            return Choice(best.name, swap=True, reason="load")
        return None

    def models(self) -> list[str]:
        """Every model some live worker serves or could load, sorted."""
        offered: set = set()
        for worker in self.workers:
            offered |= worker.offers()
        return sorted(offered)

    def default_model(self) -> str:
        """The model most live workers have loaded (the first by name when tied), for a new conversation."""
        counts: dict[str, int] = {}
        for worker in self.workers:
            if worker.live and worker.model_file:
                counts[worker.model_file] = counts.get(worker.model_file, 0) + 1
        return min(counts, key=lambda f: (-counts[f], f)) if counts else ""
