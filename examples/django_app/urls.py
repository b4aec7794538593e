from django.urls import path

from examples.django_app import views

urlpatterns = [
    path("stream", views.stream),
    path("healthz", views.healthz),
]
