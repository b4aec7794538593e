"""Store URLs: one parser for every form (Sentinel among them), passwords masked in every message."""

from __future__ import annotations

import re

import pytest

from uncut.redis_config import masked, parse_store_url
from webapp.config import ConfigError, describe, load_settings


def test_a_sentinel_url_names_every_sentinel_the_service_and_the_database() -> None:
    target = parse_store_url("redis+sentinel://:s3cret@10.0.0.1:26379,sentinel-b:26380,[::1]:26381/mymaster/2")
    assert target.sentinel and target.sentinels == (("10.0.0.1", 26379), ("sentinel-b", 26380), ("::1", 26381))
    assert (target.service, target.db, target.password, target.username) == ("mymaster", 2, "s3cret", None)
    assert "s3cret" not in repr(target)
    assert parse_store_url("redis+sentinel://h:1/svc").db == 0


def test_plain_urls_go_through_unchanged() -> None:
    for url in ("redis://127.0.0.1:6379/0", "rediss://u:p@h:6380/1", "unix:///run/redis.sock?db=0"):
        target = parse_store_url(url)
        assert target.url == url and not target.sentinel


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("redis+cluster://a:7000,b:7001", "Redis Cluster is not supported"),
        ("http://127.0.0.1:6379", "must be a redis://"),
        ("redis+sentinel://host/mymaster/0", "host:port"),
        ("redis+sentinel://host:99999/mymaster/0", "host:port"),
        ("redis+sentinel://host:26379", "/<service>/<db>"),
        ("redis+sentinel://host:26379/a/b/c", "/<service>/<db>"),
        ("redis+sentinel://host:26379/mymaster/zero", "must be a number"),
    ],
)
def test_bad_urls_say_what_is_wrong(url: str, says: str) -> None:
    with pytest.raises(ValueError, match=re.escape(says)):
        parse_store_url(url)
    with pytest.raises(ConfigError) as caught:
        load_settings({"WEBAPP_STREAM_STORE": url})
    assert "WEBAPP_STREAM_STORE=" in str(caught.value) and says in str(caught.value)


def test_passwords_are_masked_in_every_form() -> None:
    cases = {
        "redis://:secret@127.0.0.1:6379/0": "redis://:***@127.0.0.1:6379/0",
        "rediss://user:secret@h:6380/1": "rediss://user:***@h:6380/1",
        "redis+sentinel://:secret@a:1,b:2/mymaster/0": "redis+sentinel://:***@a:1,b:2/mymaster/0",
        "unix:///run/redis.sock?db=0&password=secret": "unix:///run/redis.sock?db=0&password=***",
        "redis://user@h/0": "redis://user@h/0",
        "redis://h:6379/0": "redis://h:6379/0",
    }
    for url, shown in cases.items():
        assert masked(url) == shown
    with pytest.raises(ConfigError) as caught:
        load_settings({"WEBAPP_STREAM_STORE": "redis+sentinel://:secret@a/mymaster/0"})
    assert "secret" not in str(caught.value) and ":***@" in str(caught.value)
    shown_settings = describe(load_settings({"WEBAPP_STREAM_STORE": "redis+sentinel://:secret@a:1,b:2/m/0"}))
    assert shown_settings["stream_store"] == "redis+sentinel://:***@a:1,b:2/m/0"


def test_reseeding_is_on_by_default_and_can_be_turned_off() -> None:
    assert load_settings({}).stream_store_reseed is True and load_settings({}).stream_store_retry_seconds == 10.0
    settings = load_settings({"WEBAPP_STREAM_STORE_RESEED": "false", "WEBAPP_STREAM_STORE_RETRY_SECONDS": "3"})
    assert settings.stream_store_reseed is False and settings.stream_store_retry_seconds == 3.0
