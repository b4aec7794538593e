"""The project's one streaming view: a few lines, because uncut.django does the rest."""

from __future__ import annotations

import json

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from langchain_core.messages import HumanMessage

from examples.models import build_model
from uncut.django import sse_response

model = build_model()


@csrf_exempt  # an API endpoint for non-browser clients; keep CSRF on for forms
@require_POST
def stream(request: HttpRequest) -> HttpResponse:
    try:
        message = json.loads(request.body).get("message")
    except (ValueError, AttributeError):
        message = None
    if not isinstance(message, str) or not message.strip():
        return JsonResponse({"error": {"type": "invalid_request", "message": 'send {"message": "..."}'}}, status=400)
    return sse_response(request, model, [HumanMessage(message)])


def healthz(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"status": "ok"})
