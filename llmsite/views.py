from django.db import DatabaseError, connection
from django.http import JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from advisor.hardware import detect_gpus
from chat.worker import worker_status


@require_GET
def home(request):
    return render(request, "llmsite/home.html")


def _database_ok() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            return cursor.fetchone() == (1,)
    except DatabaseError:
        return False


def _is_staff(request) -> bool:
    try:
        return request.user.is_authenticated and request.user.is_staff
    except DatabaseError:  # the session lives in the database: without it, nobody is staff
        return False


@never_cache
@require_GET
def healthz(request):
    """Machine-readable state: 200 when the database answers, 503 when it does not.

    No GPU is a normal answer (an empty list), not a failure. Anyone may ask, so anonymous callers get
    states only: the worker's state and each GPU's name. The worker's error text (which can hold file
    paths and bytes of a file), its pid, model and GPU memory figures are for signed-in staff.
    """
    database_ok = _database_ok()
    worker, gpus = worker_status(), [gpu.as_dict() for gpu in detect_gpus()]
    if not _is_staff(request):
        worker = {"state": worker.get("state")}
        gpus = [{"name": gpu["name"]} for gpu in gpus]
    body = {
        "status": "ok" if database_ok else "error",
        "database": database_ok,
        "worker": worker,
        "gpus": gpus,
    }
    return JsonResponse(body, status=200 if database_ok else 503)
