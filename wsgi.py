"""The WSGI entry point: ``gunicorn -c conf/gunicorn.conf.py wsgi:app``.

No monkey-patching and no clients here: gunicorn's gevent worker patches
before it imports this file, and the factory builds the model client after.
"""

from webapp import create_app

app = create_app()
