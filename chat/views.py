"""The chat page, conversation management, exports, and the staff's Models page.

Every view that takes a conversation id looks it up among the signed-in user's own conversations, so
someone else's id answers 404 exactly like one that does not exist.
"""

import json
from functools import wraps

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import content_disposition_header
from django.utils.text import slugify
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from advisor.local_files import local_files
from advisor.models import LanguageModel
from chat import services
from chat.forms import PresetForm, RenameForm, SamplingForm, SearchForm, SystemPromptForm
from chat.models import Conversation, Message, Preset, Role, Status, selected_path
from chat.protocol import max_content_chars
from chat.worker import worker_status

SIDEBAR_LIMIT = 200


# --- Helpers ------------------------------------------------------------------------------------------------


def staff_required(view):
    """Sign-in page for visitors, 403 for people who are signed in but not staff."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not (request.user.is_active and request.user.is_staff):
            raise PermissionDenied
        return view(request, *args, **kwargs)

    return wrapper


def owned_conversation(request, pk: int) -> Conversation:
    return get_object_or_404(Conversation.objects.owned_by(request.user), pk=pk)


def sidebar_context(request, current: Conversation | None, worker: dict | None = None) -> dict:
    search = SearchForm(request.GET or None)
    query = search.cleaned_data["q"] if search.is_valid() else ""
    conversations = Conversation.objects.owned_by(request.user).matching(query)[:SIDEBAR_LIMIT]
    return {"search_form": search, "query": query, "conversations": conversations, "current": current,
            **model_choice_context(worker)}


def model_choice_context(worker: dict | None) -> dict:
    """The models a new conversation may be written by; a choice is offered only when there are two or more."""
    choices = services.available_models()
    loaded = (worker or {}).get("model_file")
    return {"model_choices": choices if len(choices) > 1 else [],
            "model_default": loaded if loaded in choices else (choices[0] if choices else "")}


def model_display_name(status: dict) -> str:
    """What the chat calls the loaded model: the catalog's name for a file of that shape (the advisor matches
    files by their architecture), else the GGUF's general.name, else the file name."""
    file_name = status.get("model_file") or ""
    if not file_name:
        return ""
    for found in local_files(settings.MODELS_DIR):
        if found.name == file_name:
            n_layer, n_embd, n_head, n_head_kv, n_vocab = found.shape
            model = LanguageModel.objects.filter(n_layers=n_layer, n_embd=n_embd, n_head=n_head, n_head_kv=n_head_kv,
                                                 n_vocab=n_vocab).order_by("name").first()
            if model is not None:
                return model.name
    return status.get("model_name") or file_name


def chat_config(request, conversation: Conversation | None, chat_messages, status: dict) -> dict:
    """What static/js/chat.js needs, passed through json_script (data, never executable)."""
    presets = [preset.as_config() for preset in Preset.objects.owned_by(request.user)]
    return {
        "presets": presets,
        "maxMessageChars": max_content_chars(),
        "wsPath": "/ws/chat/",
        "conversation": conversation.pk if conversation else None,
        "conversationUrl": reverse("chat:conversation", args=[0]),
        "indexUrl": reverse("chat:index"),
        "exportUrls": {"md": reverse("chat:export", args=[0, "md"]), "json": reverse("chat:export", args=[0, "json"])},
        "systemPromptUrl": reverse("chat:system_prompt", args=[0]),
        "streaming": [m.pk for m in chat_messages if m.status == Status.STREAMING and m.role == Role.ASSISTANT],
        "model": {key: status.get(key) for key in ("state", "model_file", "model_name", "progress", "error", "n_ctx")},
        "modelNames": {status["model_file"]: status["display_name"]} if status.get("model_file") else {},
        "i18n": {
            "copy": _("Copy"),
            "copied": _("Copied"),
            "copyCode": _("Copy code"),
            "image": _("image"),
            "export": _("Export"),
            "markdown": _("Markdown"),
            "save": _("Save"),
            "edit": _("Edit"),
            "saveSend": _("Save and send"),
            "cancel": _("Cancel"),
            "regenerate": _("Regenerate"),
            "user": _("You"),
            "assistant": _("Assistant"),
            "connecting": _("Connecting…"),
            "connected": _("Connected"),
            "reconnecting": _("Connection lost. Reconnecting in %(seconds)s s…"),
            "connectionLost": _("The connection was lost before the reply started. Please send it again."),
            "queued": _("Waiting in line: position %(position)s"),
            "waitingForModel": _("Loading %(model)s for this reply: %(percent)s%%"),
            "thinking": _("Writing…"),
            "stopped": _("Stopped"),
            "error": _("Error"),
            "stats": _("%(tokens)s tokens · %(tps)s tokens/s · first token after %(ttft)s ms"),
            "modelLoading": _("Loading model %(model)s…"),
            "modelReady": _("Model: %(model)s"),
            "modelError": _("The model could not be loaded: %(error)s"),
            "modelNone": _("No model loaded"),
            "newConversation": _("New conversation"),
            "openSidebar": _("Conversations"),
            "reasoningThinking": _("Thinking… %(chars)s characters · %(seconds)s s"),
            "reasoningThinkingLength": _("Thinking… %(chars)s characters"),
            "reasoningDone": _("Reasoning · %(chars)s characters · %(seconds)s s"),
            "reasoningAbout": _("Reasoning · %(chars)s characters · about %(seconds)s s"),
            "reasoningLength": _("Reasoning · %(chars)s characters"),
            "lengthLimit": _("Stopped at the length limit"),
            "continue": _("Continue"),
            "previousVersion": _("Previous version"),
            "nextVersion": _("Next version"),
            "versionOf": _("Version %(version)s of %(versions)s"),
            "deleteQuestion": _("Delete “%(title)s”?"),
            "renameOrDelete": _("Rename or delete “%(title)s”"),
            "removeFile": _("Remove %(name)s"),
            "fileNotText": _("%(name)s is not a text file: attach code, Markdown or plain text."),
            "fileTooLong": _("%(name)s is too long: about %(tokens)s tokens, and the model's context holds "
                             "%(n_ctx)s. Attach a shorter file or a part of it."),
            "messageTooLong": _("The message with its files is too long: at most %(max)s characters."),
            "presetApplied": _("Preset “%(name)s” applied."),
        },
    }


def default_preset(user) -> Preset | None:
    return Preset.objects.owned_by(user).filter(is_default=True).first()


def render_chat(request, conversation: Conversation | None, *, system_form=None, rename_form=None, status=200):
    chat_messages = selected_path(conversation.messages.exclude(role=Role.SYSTEM)) if conversation else []
    worker = worker_status()
    worker["display_name"] = model_display_name(worker)
    if system_form is None and conversation is None:
        preset = default_preset(request.user)  # a new conversation starts with the default preset's prompt
        system_form = SystemPromptForm(initial={"system_prompt": preset.system_prompt if preset else ""})
    context = {
        **sidebar_context(request, conversation, worker),
        "conversation": conversation,
        "chat_messages": chat_messages,
        "new_item": Conversation(pk=0, title=""),  # the sidebar entry the page adds for a conversation begun on it
        "presets": Preset.objects.owned_by(request.user),
        "system_form": system_form or SystemPromptForm(instance=conversation),
        "sampling_form": SamplingForm(),
        "worker": worker,
        "chat_config": chat_config(request, conversation, chat_messages, worker),
    }
    return render(request, "chat/chat.html", context, status=status)


# --- The chat page ----------------------------------------------------------------------------------------


@never_cache
@login_required
@require_GET
def index(request):
    return render_chat(request, None)


@never_cache
@login_required
@require_GET
def conversation(request, pk):
    return render_chat(request, owned_conversation(request, pk))


@login_required
@require_POST
def new(request):
    """A new conversation, optionally with a system prompt. An untouched empty one is reused."""
    form = SystemPromptForm(request.POST)
    model = request.POST.get("model") or ""
    if model and model not in services.available_models():
        messages.error(request, _("%(model)s is not a model this site can use now: choose one of the list.")
                       % {"model": model[:255]})
        return redirect("chat:index")
    if not form.is_valid():
        return render_chat(request, None, system_form=form)
    empty = (
        Conversation.objects.owned_by(request.user)
        .filter(title="", messages__isnull=True)
        .order_by("-updated_at")
        .first()
    )
    if empty is None:
        empty = Conversation(owner=request.user)
    prompt = form.cleaned_data["system_prompt"]
    if "system_prompt" not in request.POST:  # "+ New conversation": the default preset's prompt, if any
        preset = default_preset(request.user)
        prompt = preset.system_prompt if preset else ""
    empty.system_prompt = prompt
    if model:
        empty.model_file = model
    empty.save()
    return redirect("chat:conversation", pk=empty.pk)


@login_required
@require_http_methods(["GET", "POST"])
def rename(request, pk):
    conv = owned_conversation(request, pk)
    form = RenameForm(request.POST or None, instance=conv)
    if request.method == "POST" and form.is_valid():
        form.save()
        return redirect("chat:conversation", pk=conv.pk)
    return render(request, "chat/rename.html", {"conversation": conv, "form": form})


@login_required
@require_http_methods(["GET", "POST"])
def delete(request, pk):
    conv = owned_conversation(request, pk)
    if request.method == "POST":
        title = str(conv)
        conv.delete()
        messages.success(request, _("Deleted “%(title)s”.") % {"title": title})
        return redirect("chat:index")
    return render(request, "chat/delete.html", {"conversation": conv})


@login_required
@require_POST
def system_prompt(request, pk):
    conv = owned_conversation(request, pk)
    form = SystemPromptForm(request.POST, instance=conv)
    if not form.is_valid():
        return render_chat(request, conv, system_form=form)
    form.save()
    messages.success(request, _("System prompt saved."))
    return redirect("chat:conversation", pk=conv.pk)


# --- Presets ------------------------------------------------------------------------------------------------


def owned_preset(request, pk: int) -> Preset:
    return get_object_or_404(Preset.objects.owned_by(request.user), pk=pk)


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def presets(request):
    """Your presets, and a form for a new one."""
    form = PresetForm(request.POST or None, owner=request.user)
    if request.method == "POST" and form.is_valid():
        preset = form.save()
        messages.success(request, _("Preset “%(name)s” saved.") % {"name": preset.name})
        return redirect("chat:presets")
    return render(request, "chat/presets.html", {
        "presets": Preset.objects.owned_by(request.user), "form": form,
        "sampling_labels": {name: field.label for name, field in SamplingForm().fields.items()},
    })


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def preset_edit(request, pk):
    preset = owned_preset(request, pk)
    form = PresetForm(request.POST or None, instance=preset, owner=request.user)
    if request.method == "POST" and form.is_valid():
        form.save()
        messages.success(request, _("Preset “%(name)s” saved.") % {"name": preset.name})
        return redirect("chat:presets")
    return render(request, "chat/preset_edit.html", {"preset": preset, "form": form})


@login_required
@require_POST
def preset_default(request, pk):
    preset = owned_preset(request, pk)
    preset.save_as_default()
    messages.success(request, _("“%(name)s” now starts new conversations.") % {"name": preset.name})
    return redirect("chat:presets")


@login_required
@require_POST
def preset_delete(request, pk):
    preset = owned_preset(request, pk)
    name = preset.name
    preset.delete()
    messages.success(request, _("Preset “%(name)s” deleted.") % {"name": name})
    return redirect("chat:presets")


# --- Export -----------------------------------------------------------------------------------------------


def _message_dict(message) -> dict:
    return {
        "id": message.pk,
        "parent": message.parent_id,
        "version": getattr(message, "version", None),
        "versions": getattr(message, "versions", None),
        "selected": message.selected,
        "finish_reason": message.finish_reason,
        "role": message.role,
        "content": message.content,
        "status": message.status,
        "error": message.error,
        "options": message.options,
        "prompt_tokens": message.prompt_tokens,
        "completion_tokens": message.completion_tokens,
        "ttft_ms": message.ttft_ms,
        "prompt_tokens_per_s": message.prompt_tokens_per_s,
        "decode_tokens_per_s": message.decode_tokens_per_s,
        "created_at": message.created_at.isoformat(),
        "finished_at": message.finished_at.isoformat() if message.finished_at else None,
    }


def _path_and_others(conv: Conversation) -> tuple[list[Message], list[Message], dict]:
    """The path shown, every other message, and the versions of each turn by their parent's id."""
    everything = list(conv.messages.exclude(role=Role.SYSTEM))
    path = selected_path(everything)
    on_path = {m.pk for m in path}
    by_parent: dict = {}
    for message in everything:
        by_parent.setdefault(message.parent_id, []).append(message)
    for message in everything:  # every message's place among the versions of its turn
        versions = by_parent[message.parent_id]
        message.version, message.versions = versions.index(message) + 1, len(versions)
    return path, [m for m in everything if m.pk not in on_path], by_parent


def _branch_after(message: Message, by_parent: dict) -> list[Message]:
    """The turns after `message` on its branch: the selected version of each, as the page would show them."""
    turns = []
    while versions := by_parent.get(message.pk):
        message = next((m for m in reversed(versions) if m.selected), versions[-1])
        turns.append(message)
    return turns


def export_json(conv: Conversation) -> str:
    path, others, _by_parent = _path_and_others(conv)
    data = {
        "id": conv.pk,
        "title": str(conv),
        "system_prompt": conv.system_prompt,
        "model_file": conv.model_file,
        "created_at": conv.created_at.isoformat(),
        "updated_at": conv.updated_at.isoformat(),
        "exported_at": timezone.now().isoformat(),
        # The conversation as shown (the selected version of each turn), then every other version, each with its
        # `parent`, so the whole tree of versions can be rebuilt.
        "messages": [_message_dict(m) for m in path],
        "other_versions": [_message_dict(m) for m in others],
    }
    return json.dumps(data, ensure_ascii=False, indent=2) + "\n"


def export_markdown(conv: Conversation) -> str:
    role_names = {Role.SYSTEM: _("System"), Role.USER: _("User"), Role.ASSISTANT: _("Assistant")}
    lines = [f"# {conv}", ""]
    if conv.model_file:
        lines += [_("Model: %(model)s") % {"model": conv.model_file}, ""]
    if conv.system_prompt:
        lines += [f"## {role_names[Role.SYSTEM]}", "", conv.system_prompt, ""]
    path, _others, by_parent = _path_and_others(conv)
    lines += _markdown_turns(path, by_parent, 2, role_names)
    return "\n".join(lines)


def _markdown_turns(turns: list[Message], by_parent: dict, level: int, role_names: dict) -> list[str]:
    """`turns` under headings of `level`; after each, its other versions one level down, each followed by the
    turns of its own branch two levels down (headings stop at level 6)."""
    lines = []
    for message in turns:
        heading = role_names.get(message.role, message.role)
        if message.status in (Status.STOPPED, Status.ERROR):
            heading += f" ({message.get_status_display()})"
        if message.finish_reason == "length":
            heading += f" ({message.get_finish_reason_display()})"
        if message.versions > 1:
            heading += " · " + _("version %(version)s of %(versions)s") % {"version": message.version,
                                                                          "versions": message.versions}
        lines += [f"{'#' * level} {heading}", "", message.content, ""]
        for other in by_parent[message.parent_id]:  # the other versions of this turn, each under its own heading
            if other.pk != message.pk:
                title = _("Version %(version)s of %(versions)s (not shown)") % {
                    "version": other.version, "versions": other.versions}
                lines += [f"{'#' * min(level + 1, 6)} {title}", "", other.content, ""]
                lines += _markdown_turns(_branch_after(other, by_parent), by_parent, min(level + 2, 6), role_names)
    return lines


EXPORTS = {
    "md": (export_markdown, "text/markdown; charset=utf-8"),
    "json": (export_json, "application/json; charset=utf-8"),
}


@login_required
@require_GET
def export(request, pk, fmt):
    conv = owned_conversation(request, pk)
    if fmt not in EXPORTS:
        raise Http404(_("Conversations are exported as .md or .json."))
    build, content_type = EXPORTS[fmt]
    file_name = f"{slugify(str(conv))[:60] or 'conversation'}-{conv.pk}.{fmt}"
    return HttpResponse(
        build(conv), content_type=content_type,
        headers={"Content-Disposition": content_disposition_header(True, file_name)},
    )


# --- Models (staff) ----------------------------------------------------------------------------------------
