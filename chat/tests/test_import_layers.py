"""The import graph (scripts/import_cycles.py): no cycles, chat/worker/ below the rest of chat, and no app
importing llmsite/ (the project package above the apps)."""

import importlib.util
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "import_cycles.py"
spec = importlib.util.spec_from_file_location("import_cycles", SCRIPT)
import_cycles = importlib.util.module_from_spec(spec)
spec.loader.exec_module(import_cycles)


def test_it_finds_a_cycle_however_long_and_only_cycles():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert import_cycles.cycles(graph) == [["a", "b", "c"]]


def test_it_flags_the_worker_package_importing_the_web_side():
    problems = import_cycles.layer_violations({"chat.worker.replies": {"chat.services", "chat.worker.manager"}})
    assert problems == ["chat.worker.replies imports chat.services: chat/worker/ must not import the rest of chat"]


def test_the_project_has_no_import_cycle():
    found_cycles, _problems = import_cycles.report()
    assert found_cycles == []


def test_the_worker_package_never_imports_the_rest_of_chat():
    _cycles, problems = import_cycles.report()
    assert [p for p in problems if "chat/worker/" in p] == []


def test_it_flags_an_app_importing_the_project_package():
    problems = import_cycles.layer_violations({"downloads.services": {"llmsite.modelfiles", "advisor.modelfiles"},
                                               "llmsite.serve": {"advisor.modelfiles"}})
    assert problems == ["downloads.services imports llmsite.modelfiles: an app imports llmsite/, the project above it"]


def test_every_app_is_in_the_graph():
    """An app left out of APPS would be left out of both checks."""
    apps = {path.parent.name for path in import_cycles.ROOT.glob("*/apps.py")}
    assert apps and apps <= set(import_cycles.APPS), apps - set(import_cycles.APPS)


def test_no_app_imports_the_project_package():
    _cycles, problems = import_cycles.report()
    assert [p for p in problems if "imports llmsite" in p] == []
