"""The WebSocket upgrade's rules and the env built from it, as plain functions (the transport
refusing upgrades over real sockets: test_e2e_identity, test_e2e_hostile)."""

from __future__ import annotations

from ocppcable.upgrade import (
    CLIENT_CERT_HEADER,
    STATION_ID_HEADER,
    bounded_request_id,
    first_served,
    new_sid,
    station_env,
    station_id_in,
)


def test_the_station_id_is_the_path_under_the_prefix() -> None:
    assert station_id_in("/ocpp/", "/ocpp/CP-1") == "CP-1"
    assert station_id_in("/ocpp/", "/ocpp/CP%2D1") == "CP-1"
    assert station_id_in("/ocpp/", "/other/CP-1") is None
    assert station_id_in("/ocpp/", "/ocpp/") is None
    assert station_id_in("/ocpp/", "/ocpp/a/b") is None
    assert station_id_in("/ocpp/", "/ocpp/..") is None
    assert station_id_in("/ocpp/", "/ocpp/" + "x" * 49) is None


def test_the_first_offered_subprotocol_served_is_chosen() -> None:
    served = {"ocpp1.6": 1, "ocpp2.0.1": 2}
    assert first_served(served, ["ocpp2.1", "ocpp2.0.1", "ocpp1.6"]) == "ocpp2.0.1"
    assert first_served(served, ["ocpp2.1"]) is None
    assert first_served(served, []) is None


def test_the_env_names_the_routed_path_and_the_forwarded_headers() -> None:
    url, headers = station_env(
        secure=True,
        host="gw.example:8443",
        prefix="/ocpp/",
        station_id="CP-1",
        request_uri="/ocpp/CP%2D1?token=t",
        headers={"cookie": "c=1", "authorization": "", "x-other": "o"},
        forward_headers=["cookie", "authorization"],
        peer="10.0.0.7",
        subprotocol="ocpp1.6",
        common_name="CP-1",
    )
    assert url == "https://gw.example:8443/ocpp/CP-1?token=t"
    assert headers == {
        "cookie": "c=1",
        "REMOTE_ADDR": "10.0.0.7",
        "sec-websocket-protocol": "ocpp1.6",
        STATION_ID_HEADER: "CP-1",
        CLIENT_CERT_HEADER: "CP-1",
    }


def test_without_a_certificate_or_query_the_env_has_neither() -> None:
    url, headers = station_env(
        secure=False,
        host="gw",
        prefix="/",
        station_id="CP-1",
        request_uri="/CP-1",
        headers={},
        forward_headers=[],
        peer="",
        subprotocol="ocpp2.0.1",
        common_name=None,
    )
    assert url == "http://gw/CP-1"
    assert CLIENT_CERT_HEADER not in headers


def test_a_request_id_is_bounded_printable_ascii_and_a_sid_is_21_characters() -> None:
    assert bounded_request_id(None) == ""
    assert bounded_request_id("a\x00b\u00e9c" + "x" * 100) == "abc" + "x" * 59
    assert len(new_sid()) == 21
