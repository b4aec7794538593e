"""A minimal Django project with one streaming view, and GZipMiddleware on as most projects have it.

DJANGO_SETTINGS_MODULE=examples.django_app.settings gunicorn -c conf/gunicorn.conf.py examples.django_app.wsgi:application
curl -N localhost:8000/stream -H 'Content-Type: application/json' -d '{"message": "hi"}'
"""

from __future__ import annotations

import os
import secrets

DEBUG = False
# No sessions or signed cookies here: a key made at start-up is enough, and none lives in the repository.
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY") or secrets.token_urlsafe(32)
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
ROOT_URLCONF = "examples.django_app.urls"
INSTALLED_APPS: list[str] = []
MIDDLEWARE = [
    "django.middleware.gzip.GZipMiddleware",
    "django.middleware.common.CommonMiddleware",
]
USE_TZ = True

# The library's options for every stream of this project (StreamOptions fields, in capitals).
UNCUT = {
    "HEARTBEAT_SECONDS": float(os.environ.get("EXAMPLE_HEARTBEAT_SECONDS", "15")),
}
