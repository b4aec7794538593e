from django.urls import path

from examples.django_app import views

urlpatterns = [
    path("stream", views.stream),
    path("ui/chat", views.ui_chat),
    path("ui/chat/<str:chat_id>/stream", views.ui_chat_resume),
    path("healthz", views.healthz),
]
