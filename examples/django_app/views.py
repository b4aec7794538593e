"""The project's one streaming view: a few lines, because uncut.django does the rest."""

from __future__ import annotations

import json

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from langchain_core.messages import HumanMessage

from examples.models import build_model
from uncut.django import resume_ui_message_response, sse_response, ui_message_response
from uncut.ui_request import InvalidUIRequest, parse_ui_chat, valid_chat_id

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


@csrf_exempt
@require_POST
def ui_chat(request: HttpRequest) -> HttpResponse:
    """The Vercel AI SDK's useChat endpoint: DefaultChatTransport({api: "/ui/chat"})."""
    try:
        chat = parse_ui_chat(json.loads(request.body), max_messages=50, max_message_chars=20_000)
    except (ValueError, InvalidUIRequest) as exc:
        return JsonResponse({"error": {"type": "invalid_request", "message": str(exc)}}, status=400)
    return ui_message_response(request, model, chat.messages, chat_id=chat.chat_id)


def ui_chat_resume(request: HttpRequest, chat_id: str) -> HttpResponse:
    """useChat({resume: true}): the chat's latest stream, or 204."""
    try:
        valid_chat_id(chat_id)
    except InvalidUIRequest as exc:
        return JsonResponse({"error": {"type": "invalid_request", "message": str(exc)}}, status=400)
    return resume_ui_message_response(request, chat_id)


def healthz(request: HttpRequest) -> HttpResponse:
    return JsonResponse({"status": "ok"})
