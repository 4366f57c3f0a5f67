"""Which Redis worker writes a reply (chat/worker/selection.py): the rule alone, through its public API."""

from chat.worker.selection import WorkerChooser, WorkerView


def worker(name, model="a.gguf", *, state="ready", slots=4, running=0, queued=0, in_hand=0, conversations=(),
           models=("a.gguf", "b.gguf"), pinned=False):
    return WorkerView(name=name, state=state, model_file=model, models=frozenset(models), pinned=pinned,
                      slots=slots, running=running, queued=queued, in_hand=in_hand,
                      conversations=frozenset(conversations))


def test_it_prefers_the_worker_holding_the_conversations_cache_when_it_has_a_free_slot():
    chooser = WorkerChooser([worker("w1", running=1), worker("w2", running=3, conversations=[7])])
    choice = chooser.choose("a.gguf", conversation=7)
    assert (choice.worker, choice.swap, choice.reason) == ("w2", False, "cache")


def test_a_free_slot_elsewhere_beats_the_cache_holder_with_none():
    chooser = WorkerChooser([worker("w1", running=1), worker("w2", running=4, conversations=[7])])
    assert chooser.choose("a.gguf", conversation=7).worker == "w1"


def test_without_a_cache_it_takes_the_worker_with_the_most_free_slots():
    chooser = WorkerChooser([worker("w1", running=3), worker("w2", running=1), worker("w3", running=2)])
    choice = chooser.choose("a.gguf", conversation=None)
    assert (choice.worker, choice.reason) == ("w2", "free slot")


def test_replies_sent_but_not_yet_announced_count_against_the_free_slots():
    chooser = WorkerChooser([worker("w1", slots=2, in_hand=2), worker("w2", slots=2, running=1)])
    assert chooser.choose("a.gguf").worker == "w2"


def test_when_every_slot_is_taken_the_shortest_backlog_waits():
    chooser = WorkerChooser([worker("w1", slots=1, running=1, queued=3), worker("w2", slots=1, running=1, queued=1)])
    choice = chooser.choose("a.gguf")
    assert (choice.worker, choice.swap, choice.reason) == ("w2", False, "wait")


def test_a_worker_loading_the_model_is_preferred_to_one_that_would_have_to_swap():
    chooser = WorkerChooser([worker("w1", "a.gguf", state="loading"), worker("w2", "b.gguf")])
    assert chooser.choose("a.gguf").worker == "w1"


def test_a_model_no_worker_has_loaded_goes_to_an_idle_worker_that_has_the_file():
    chooser = WorkerChooser([worker("w1", "a.gguf", running=1), worker("w2", "a.gguf"),
                             worker("w3", "a.gguf", models=("a.gguf",))])
    choice = chooser.choose("b.gguf")
    assert (choice.worker, choice.swap, choice.reason) == ("w2", True, "load")


def test_a_pinned_worker_never_swaps_and_offers_only_its_model():
    chooser = WorkerChooser([worker("w1", "a.gguf", pinned=True)])
    assert chooser.choose("b.gguf") is None
    assert chooser.models() == ["a.gguf"]


def test_dead_or_failed_workers_are_never_chosen_nor_offered():
    chooser = WorkerChooser([worker("w1", state="error"), worker("w2", state="stopped", model="b.gguf")])
    assert chooser.choose("a.gguf") is None and chooser.choose("b.gguf") is None
    assert chooser.models() == []


def test_the_models_offered_are_those_loaded_and_those_in_unpinned_workers_folders():
    chooser = WorkerChooser([worker("w1", "a.gguf", models=("a.gguf", "c.gguf")),
                             worker("w2", "b.gguf", models=("b.gguf", "d.gguf"), pinned=True)])
    assert chooser.models() == ["a.gguf", "b.gguf", "c.gguf"]


def test_the_default_model_is_the_one_most_workers_have_loaded():
    chooser = WorkerChooser([worker("w1", "b.gguf"), worker("w2", "a.gguf"), worker("w3", "b.gguf")])
    assert chooser.default_model() == "b.gguf"
    assert WorkerChooser([]).default_model() == ""


def test_an_announcement_from_an_older_worker_gets_defaults_and_bad_fields_are_ignored():
    view = WorkerView.from_announcement({"name": "w1", "state": "ready", "model_file": "a.gguf",
                                         "slots": "four", "running": -1, "models": "a.gguf",
                                         "conversations": [3, "x", None], "pinned": "yes"}, in_hand=1)
    assert (view.slots, view.running, view.models, view.conversations, view.pinned, view.in_hand) == (
        1, 0, frozenset(), frozenset({3}), False, 1)
    assert WorkerChooser([view]).choose("a.gguf").reason == "wait"  # its one slot holds the reply sent to it
