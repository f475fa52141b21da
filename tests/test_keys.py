"""Bearer keys derived from --secret as AnyCable does (docs/operations.md, "Deploying from
``etc/``"); the vectors: ``printf %s rpc-cable | openssl dgst -sha256 -hmac secret``, and the
same for ``broadcast-cable``."""

from __future__ import annotations

from ocppcable import keys

RPC_KEY = "f07cae1c1e872f121cf4b7d3063cf9e53464f52cd944522d045ba5eee35a7912"
BROADCAST_KEY = "fc20575eaa046c555be789f7a9df5111d64eb17e4956597597c3220c1ad14739"


def test_derived_keys_match_anycable():
    assert keys.derive("secret", keys.RPC_PHRASE) == RPC_KEY
    assert keys.derive("secret", keys.BROADCAST_PHRASE) == BROADCAST_KEY


def test_an_explicit_key_wins_over_the_secret():
    assert keys.resolve("my-key", "secret", keys.RPC_PHRASE) == "my-key"


def test_without_an_explicit_key_it_is_derived_from_the_secret():
    assert keys.resolve(None, "secret", keys.RPC_PHRASE) == RPC_KEY
    assert keys.resolve("", "secret", keys.BROADCAST_PHRASE) == BROADCAST_KEY


def test_none_disables_and_nothing_configured_means_no_key():
    assert keys.resolve("none", "secret", keys.RPC_PHRASE) is None
    assert keys.resolve(None, None, keys.RPC_PHRASE) is None
