"""The broker URL every command line takes (`--broker`): one reading for all of them."""

from __future__ import annotations

import pytest

from mqtt.settings import BrokerUrl


@pytest.mark.parametrize(
    ("url", "host", "port", "tls"),
    [
        ("mqtt://centre", "centre", 1883, False),
        ("mqtts://centre", "centre", 8883, True),
        ("mqtts://centre.example:9883/", "centre.example", 9883, True),
        ("mqtt://[::1]:1884", "::1", 1884, False),
    ],
)
def test_a_broker_url_names_host_port_and_tls(url: str, host: str, port: int, tls: bool) -> None:
    assert BrokerUrl.parse(url) == BrokerUrl(host, port, tls)


@pytest.mark.parametrize(
    ("url", "said"),
    [
        ("http://centre", "is not mqtt://HOST[:PORT]"),
        ("mqtt://", "is not mqtt://HOST[:PORT]"),
        ("mqtt://centre/qrgate", "only scheme, host and port"),
        ("mqtt://centre?x=1", "only scheme, host and port"),
        ("mqtt://user@centre", "only scheme, host and port"),
        ("mqtt://:secret@centre", "only scheme, host and port"),  # a password, no user
        ("mqtt://centre#north", "only scheme, host and port"),
        ("mqtt://centre:99999", "bad port"),
        ("mqtt://centre:0", "bad port"),  # not the default port: no port at all
    ],
)
def test_anything_else_is_refused_saying_what(url: str, said: str) -> None:
    with pytest.raises(ValueError, match=said.replace("[", r"\[").replace("]", r"\]")):
        BrokerUrl.parse(url)
