"""Issue 22's input findings through the Flask test client: each with its negative control."""

from __future__ import annotations

import io

from flask.testing import FlaskClient

from tests.conftest import FAST_SCRIPTED
from webapp import create_app

# -- 5. a chunked body over the cap is refused whole ---------------------------------------------------

PADDED = b" " * 65_536 + b'{"message": "the tail"}'


def post_chunked(client: FlaskClient, body: bytes) -> tuple[int, bytes]:
    response = client.post("/api/chat/events", input_stream=io.BytesIO(body),
                           headers={"Transfer-Encoding": "chunked", "Content-Type": "application/json"})
    return response.status_code, response.data


def test_a_chunked_body_over_the_cap_gets_413_and_nothing_of_it_is_parsed() -> None:
    client = create_app({**FAST_SCRIPTED, "WEBAPP_MAX_BODY_BYTES": "1024"}, environ={}).test_client()
    status, data = post_chunked(client, PADDED)
    assert status == 413 and b'"request_too_large"' in data, data
    # Negative control: the same body under a larger cap is a valid request, served.
    roomy = create_app({**FAST_SCRIPTED, "WEBAPP_MAX_BODY_BYTES": "131072"}, environ={}).test_client()
    status, data = post_chunked(roomy, PADDED)
    assert status == 200 and b"event: end" in data
