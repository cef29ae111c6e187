"""Capture settings validation, JSON round trip, and setup building."""

from __future__ import annotations

import re

import pytest

from webapp.capture.settings import CaptureSettings, ChannelSettings, SettingsError
from webapp.capture.setup import build_setup, enabled_channel_numbers


def field_of(**kw) -> str:
    kw.setdefault("modules", ["127.0.2.1", "127.0.2.2"])
    with pytest.raises(SettingsError) as err:
        CaptureSettings(**kw).validate()
    assert str(err.value) == err.value.message
    user_terms(err.value.message)
    return err.value.field


def user_terms(message: str) -> None:
    """A message names fields as the user knows them: no list index, no pydantic location or
    link."""
    assert not re.search(r"\[\d+\]", message), message
    assert "pydantic" not in message and "('" not in message and "https://" not in message, message


def test_valid_settings_pass():
    CaptureSettings(modules=["127.0.2.1", "127.0.2.2:8080", "[::1]:81"]).validate()
    CaptureSettings(modules=["127.0.2.1"], duration_s=None).validate()  # single module


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"modules": []}, "modules"),
        ({"modules": ["127.0.2.1", "127.0.2.1"]}, "modules[1]"),
        ({"modules": ["127.0.2.1", "127.0.2.1:80"]}, "modules[1]"),
        ({"modules": ["127.0.2.1", "no-such-host.invalid"]}, "modules[1]"),
        ({"modules": ["127.0.2.1", "127.0.2.2:99999"]}, "modules[1]"),
        ({"modules": ["[fe80::1"]}, "modules[0]"),
        ({"name": "../etc/passwd"}, "name"),
        ({"name": ".hidden"}, "name"),
        ({"name": ""}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"name": "a/b"}, "name"),
        ({"name": "CON"}, "name"),
        ({"name": "nul.txt"}, "name"),
        ({"name": "Com1 .wav"}, "name"),
        ({"name": "trailing."}, "name"),
        ({"name": "-rf"}, "name"),
        ({"name": "bell\x07"}, "name"),
        ({"name": "a\\b"}, "name"),
        ({"name": "a:b"}, "name"),
        ({"duration_s": 0}, "duration_s"),
        ({"duration_s": -1.0}, "duration_s"),
        ({"duration_s": float("nan")}, "duration_s"),
        ({"ptp_domain": 3}, "ptp_domain"),
        ({"ptp_domain": 128}, "ptp_domain"),
        ({"ptp_domain": True}, "ptp_domain"),
        ({"bandwidth": "40 kHz"}, "bandwidth"),
        ({"ptp_timeout_s": 0}, "ptp_timeout_s"),
        ({"state_timeout_s": -3}, "state_timeout_s"),
        ({"channels": {"127.0.2.9": []}}, "channels.127.0.2.9"),
        ({"channels": {"127.0.2.1": [ChannelSettings(0)]}}, "channels.127.0.2.1[0].channel"),
        (
            {"channels": {"127.0.2.1": [ChannelSettings(1), ChannelSettings(1)]}},
            "channels.127.0.2.1[1].channel",
        ),
        (
            {"channels": {"127.0.2.1": [ChannelSettings(1, transducer={"sensitivity": 0})]}},
            "channels.127.0.2.1[0].transducer.sensitivity",
        ),
        (
            {
                "channels": {
                    "127.0.2.1": [ChannelSettings(1, transducer={"sensitivity": 1, "unit": ""})]
                }
            },
            "channels.127.0.2.1[0].transducer.unit",
        ),
        ({"channels": {"127.0.2.1": [ChannelSettings(1, ccld=1)]}}, "channels.127.0.2.1[0].ccld"),
    ],
)
def test_bad_settings_name_the_field(kw, field):
    assert field_of(**kw) == field


def test_unicode_names_are_accepted_in_nfc():
    decomposed = "U\u0308ni\u0308co\u0308de\u0301 測定"  # combining marks, as macOS spells it
    s = CaptureSettings(modules=["127.0.2.1"], name=decomposed)
    s.validate()
    assert s.name == "Ünïcödé 測定"
    s = CaptureSettings(modules=["127.0.2.1"], name="  Prøve   ३ ")
    s.validate()
    assert s.name == "Prøve ३"  # white space trimmed and runs made one space


def test_json_round_trip_and_unknown_keys():
    s = CaptureSettings(
        modules=["127.0.2.1", "127.0.2.2"],
        name="Run 1",
        duration_s=None,
        bandwidth="25.6 kHz",
        channels={
            "127.0.2.2": [
                ChannelSettings(2, enabled=False, transducer={"sensitivity": 0.1, "unit": "g"})
            ]
        },
        multi_socket=True,
    )
    again = CaptureSettings.from_json(s.to_json())
    assert again == s
    with pytest.raises(SettingsError) as err:
        CaptureSettings.from_json({"modules": ["127.0.2.1"], "duraton_s": 3})
    assert err.value.field == "duraton_s"
    with pytest.raises(SettingsError) as err:
        CaptureSettings.from_json(
            {"modules": ["a"], "channels": {"a": [{"channel": 1, "gain": 2}]}}
        )
    assert err.value.field == "channels.a[0].gain"


def test_same_session_lists_fields_that_need_a_new_setup():
    a = CaptureSettings(modules=["127.0.2.1"], name="x", duration_s=1)
    b = CaptureSettings(modules=["127.0.2.1"], name="y", duration_s=None)
    assert a.same_session(b) == []
    assert a.same_session(CaptureSettings(modules=["127.0.2.1"], ptp_domain=5)) == ["ptp_domain"]


DEFAULT = {
    "name": "Default setup",
    "channels": [
        {
            "channel": c,
            "enabled": True,
            "bandwidth": "51.2 kHz",
            "range": "10 Vpeak",
            "filter": "7.0 Hz",
            "ccld": False,
            "polvolt": False,
            "destinations": ["sd"],
            "ConnectorSelect": "BNC",
            "transducer": {"sensitivity": 1, "unit": "V"},
        }
        for c in (1, 2, 3)
    ],
}
MIC = {
    "requires200V": 1,
    "requiresCcld": 0,
    "sensitivity": 0.05,
    "serialNumber": 7,
    "unit": "Pa",
    "type": {"number": "4190", "prefix": "", "model": "", "variant": ""},
}


def test_setup_takes_detection_then_overrides():
    overrides = {
        2: ChannelSettings(
            2,
            range="0.316 Vpeak",
            ccld=True,
            transducer={"sensitivity": 0.01, "unit": "m/s^2", "serialNumber": 9, "type": "4508-B"},
        ),
        3: ChannelSettings(3, enabled=False),
    }
    setup = build_setup(DEFAULT, [MIC, None, None], overrides, "25.6 kHz", False)
    ch1, ch2, ch3 = setup["channels"]
    assert ch1["transducer"] == MIC and ch1["polvolt"] is True and ch1["ccld"] is False
    assert ch2["range"] == "0.316 Vpeak" and ch2["ccld"] is True
    assert (
        ch2["transducer"]["sensitivity"] == 0.01 and ch2["transducer"]["type"]["number"] == "4508-B"
    )
    assert ch3["enabled"] is False
    assert all(
        c["bandwidth"] == "25.6 kHz" and c["destinations"] == ["socket"] for c in setup["channels"]
    )
    assert (
        ch1["ConnectorSelect"] == "BNC" and setup["name"] == "Default setup"
    )  # untouched keys stay
    assert DEFAULT["channels"][0]["destinations"] == ["sd"]  # the default is not modified
    assert enabled_channel_numbers(setup) == [1, 2]
    multi = build_setup(DEFAULT, None, {}, "51.2 kHz", True)
    assert multi["channels"][0]["destinations"] == ["multiSocket"]


def test_setup_refuses_unknown_channels_and_all_disabled():
    with pytest.raises(SettingsError):
        build_setup(DEFAULT, None, {4: ChannelSettings(4, enabled=True)}, "51.2 kHz", False)
    with pytest.raises(SettingsError):
        build_setup(
            DEFAULT,
            None,
            {c: ChannelSettings(c, enabled=False) for c in (1, 2, 3)},
            "51.2 kHz",
            False,
        )
