"""gunicorn's entry point; gunicorn imports it in the worker, after gevent has patched the standard library."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "examples.django_app.settings")
application = get_wsgi_application()
