"""The chat page, conversation management, exports, and the staff's Models page.

Every view that takes a conversation id looks it up among the signed-in user's own conversations, so
someone else's id answers 404 exactly like one that does not exist.
"""

import json
from functools import wraps

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

from chat import services
from chat.forms import RenameForm, SamplingForm, SearchForm, SystemPromptForm
from chat.models import Conversation, Role, Status
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


def chat_config(request, conversation: Conversation | None, chat_messages, status: dict) -> dict:
    """What static/js/chat.js needs, passed through json_script (data, never executable)."""
    return {
        "wsPath": "/ws/chat/",
        "conversation": conversation.pk if conversation else None,
        "conversationUrl": reverse("chat:conversation", args=[0]),
        "indexUrl": reverse("chat:index"),
        "exportUrls": {"md": reverse("chat:export", args=[0, "md"]), "json": reverse("chat:export", args=[0, "json"])},
        "systemPromptUrl": reverse("chat:system_prompt", args=[0]),
        "streaming": [m.pk for m in chat_messages if m.status == Status.STREAMING and m.role == Role.ASSISTANT],
        "model": {key: status.get(key) for key in ("state", "model_file", "progress", "error")},
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
        },
    }


def render_chat(request, conversation: Conversation | None, *, system_form=None, rename_form=None, status=200):
    chat_messages = list(conversation.messages.exclude(role=Role.SYSTEM)) if conversation else []
    worker = worker_status()
    context = {
        **sidebar_context(request, conversation, worker),
        "conversation": conversation,
        "chat_messages": chat_messages,
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
    empty.system_prompt = form.cleaned_data["system_prompt"]
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


# --- Export -----------------------------------------------------------------------------------------------


def _message_dict(message) -> dict:
    return {
        "id": message.pk,
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


def export_json(conv: Conversation) -> str:
    data = {
        "id": conv.pk,
        "title": str(conv),
        "system_prompt": conv.system_prompt,
        "model_file": conv.model_file,
        "created_at": conv.created_at.isoformat(),
        "updated_at": conv.updated_at.isoformat(),
        "exported_at": timezone.now().isoformat(),
        "messages": [_message_dict(m) for m in conv.messages.all()],
    }
    return json.dumps(data, ensure_ascii=False, indent=2) + "\n"


def export_markdown(conv: Conversation) -> str:
    role_names = {Role.SYSTEM: _("System"), Role.USER: _("User"), Role.ASSISTANT: _("Assistant")}
    lines = [f"# {conv}", ""]
    if conv.model_file:
        lines += [_("Model: %(model)s") % {"model": conv.model_file}, ""]
    if conv.system_prompt:
        lines += [f"## {role_names[Role.SYSTEM]}", "", conv.system_prompt, ""]
    for message in conv.messages.all():
        heading = role_names.get(message.role, message.role)
        if message.status in (Status.STOPPED, Status.ERROR):
            heading += f" ({message.get_status_display()})"
        lines += [f"## {heading}", "", message.content, ""]
    return "\n".join(lines)


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
