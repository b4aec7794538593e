"""The Django example's settings, plus the negative control's view: the same stream returned as a plain
``StreamingHttpResponse`` (the library's relay, heartbeats and all) without the adapter's gzip bypass."""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, StreamingHttpResponse
from django.urls import path
from langchain_core.messages import HumanMessage

from examples.django_app import urls as example_urls
from examples.django_app.settings import *  # noqa: F401,F403 - the example's settings, unchanged
from examples.django_app.views import model
from uncut.django import streams
from uncut.streams import CONTENT_TYPES, Streams

ROOT_URLCONF = "tests.support.django_plain"


def plain(request: HttpRequest) -> HttpResponse:
    relay = streams().stream(model, [HumanMessage("plain")], environ=request.META)
    return StreamingHttpResponse(Streams.body(relay), content_type=CONTENT_TYPES["sse"])


urlpatterns = [*example_urls.urlpatterns, path("plain", plain)]
