"""Settings: every boundary, the settings-file round trip, and the command-line parser."""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any

import pytest

from focusmate.errors import ValidationError
from focusmate.settings import (
    MAX_RELAY_URLS,
    SETTING_KEYS,
    Settings,
    Theme,
    parse_setting,
)

INT_RANGES = {
    "focus_min": (1, 60),
    "short_break_min": (1, 30),
    "long_break_min": (1, 60),
    "rounds_before_long": (1, 12),
    "sound_volume": (0, 100),
}
BOOL_KEYS = [
    "auto_start",
    "sound_enabled",
    "notify_system",
    "notify_in_app",
    "do_not_disturb",
    "lan_enabled",
]


def make(**fields: Any) -> Settings:
    """Build from field names held in variables (mypy cannot type ``**{name: value}``)."""
    return Settings(**fields)


def test_defaults_match_the_product_brief() -> None:
    settings = Settings()
    assert (settings.focus_min, settings.short_break_min, settings.long_break_min) == (25, 5, 15)
    assert settings.rounds_before_long == 4
    assert settings.auto_start is True
    assert (settings.sound_enabled, settings.sound_volume) == (True, 70)
    assert (settings.notify_system, settings.notify_in_app) == (True, True)
    assert settings.do_not_disturb is False
    assert settings.relay_urls == ()
    assert settings.lan_enabled is True
    assert settings.theme is Theme.SYSTEM


def test_setting_keys_list_every_field_in_order() -> None:
    assert tuple(f.name for f in dataclasses.fields(Settings)) == SETTING_KEYS
    assert set(SETTING_KEYS) == {*INT_RANGES, *BOOL_KEYS, "relay_urls", "theme"}


def test_settings_are_frozen_hashable_and_keyword_only() -> None:
    settings = Settings()
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.focus_min = 30  # type: ignore[misc]
    assert hash(settings) == hash(Settings())
    with pytest.raises(TypeError):
        Settings(30)  # type: ignore[call-arg]


# --- integers ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "value"), [(n, v) for n, r in INT_RANGES.items() for v in r])
def test_int_setting_accepts_both_ends_of_its_range(name: str, value: int) -> None:
    assert getattr(make(**{name: value}), name) == value


@pytest.mark.parametrize(
    ("name", "value"), [(n, v) for n, (lo, hi) in INT_RANGES.items() for v in (lo - 1, hi + 1)]
)
def test_int_setting_rejects_just_outside_its_range_naming_field_and_range(
    name: str, value: int
) -> None:
    low, high = INT_RANGES[name]
    with pytest.raises(ValidationError, match=rf"^{name} must be .* from {low} to {high}, got"):
        make(**{name: value})


@pytest.mark.parametrize("name", INT_RANGES)
@pytest.mark.parametrize("value", [True, False, 25.0, "25", None])
def test_int_setting_rejects_other_types(name: str, value: object) -> None:
    with pytest.raises(ValidationError, match=name):
        make(**{name: value})


# --- booleans ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", BOOL_KEYS)
@pytest.mark.parametrize("value", [True, False])
def test_bool_setting_accepts_bools(name: str, value: bool) -> None:
    assert getattr(make(**{name: value}), name) is value


@pytest.mark.parametrize("name", BOOL_KEYS)
@pytest.mark.parametrize("value", [1, 0, "true", None])
def test_bool_setting_rejects_non_bools(name: str, value: object) -> None:
    with pytest.raises(ValidationError, match=rf"^{name} must be true or false"):
        make(**{name: value})


# --- theme ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("theme", list(Theme))
def test_every_theme_is_accepted(theme: Theme) -> None:
    assert Settings(theme=theme).theme is theme


@pytest.mark.parametrize("value", ["dark", "blue", None, 1])
def test_theme_must_be_a_theme_member(value: object) -> None:
    with pytest.raises(ValidationError, match=r"^theme must be a Theme \(light, dark, system\)"):
        Settings(theme=value)  # type: ignore[arg-type]


# --- relay URLs ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "ws://relay.local",
        "wss://relay.example.org",
        "wss://relay.example.org:8443/focus?v=1",
        "ws://192.168.1.10:8765",
        "ws://[::1]:8765/",
        "WSS://Relay.Example.org",
    ],
)
def test_relay_url_accepts_ws_and_wss_with_a_host(url: str) -> None:
    assert Settings(relay_urls=(url,)).relay_urls == (url,)


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("http://relay.example.org", "must start with ws:// or wss://"),
        ("https://relay.example.org", "must start with ws:// or wss://"),
        ("relay.example.org", "must start with ws:// or wss://"),
        ("", "must start with ws:// or wss://"),
        ("ws://", "has no host"),
        ("wss://:443/path", "has no host"),
        ("ws:///path", "has no host"),
        ("ws://relay:99999", "is not a valid URL"),
        ("ws://relay:port", "is not a valid URL"),
        ("ws://[::1", "is not a valid URL"),
        ("wss://relay.example.org/#top", "must not have a #fragment"),
        ("wss://relay.example.org#", "must not have a #fragment"),
        ("wss://relay example.org", "must not contain spaces"),
        (" wss://relay.example.org", "must not contain spaces"),
        ("wss://relay.example.org\n", "must not contain spaces or control characters"),
    ],
)
def test_relay_url_rejects_bad_urls_saying_why(url: str, problem: str) -> None:
    with pytest.raises(ValidationError, match=rf"^relay_urls: .* {problem}"):
        Settings(relay_urls=(url,))


def test_relay_urls_hold_at_most_eight() -> None:
    urls = tuple(f"wss://relay{i}.example.org" for i in range(MAX_RELAY_URLS + 1))
    assert MAX_RELAY_URLS == 8
    assert len(Settings(relay_urls=urls[:MAX_RELAY_URLS]).relay_urls) == MAX_RELAY_URLS
    with pytest.raises(ValidationError, match=r"^relay_urls holds at most 8 URLs, got 9"):
        Settings(relay_urls=urls)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("wss://relay.example.org", "wss://relay.example.org"),
        ("wss://relay.example.org", "wss://RELAY.example.org"),
        ("wss://relay.example.org", "wss://relay.example.org/"),
        ("wss://relay.example.org", "wss://relay.example.org:443"),
        ("ws://relay.local", "ws://relay.local:80/"),
        ("wss://relay.example.org", "WSS://relay.example.org"),
    ],
)
def test_relay_urls_reject_the_same_relay_twice(first: str, second: str) -> None:
    with pytest.raises(ValidationError, match=r"^relay_urls lists the same relay twice"):
        Settings(relay_urls=(first, second))


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("ws://relay.example.org", "wss://relay.example.org"),
        ("wss://relay.example.org", "wss://relay.example.org:8443"),
        ("wss://relay.example.org/a", "wss://relay.example.org/b"),
        ("wss://relay.example.org/?room=1", "wss://relay.example.org/?room=2"),
    ],
)
def test_relay_urls_allow_different_relays_on_one_host(first: str, second: str) -> None:
    assert Settings(relay_urls=(first, second)).relay_urls == (first, second)


@pytest.mark.parametrize("value", [["wss://relay.example.org"], "wss://relay.example.org", None])
def test_relay_urls_must_be_a_tuple(value: object) -> None:
    with pytest.raises(ValidationError, match=r"^relay_urls must be a tuple"):
        Settings(relay_urls=value)  # type: ignore[arg-type]


def test_relay_urls_must_hold_strings() -> None:
    with pytest.raises(ValidationError, match=r"^relay_urls must hold strings"):
        Settings(relay_urls=(b"wss://relay.example.org",))  # type: ignore[arg-type]


# --- to_dict / from_dict -------------------------------------------------------------------------

CUSTOM = Settings(
    focus_min=50,
    short_break_min=10,
    long_break_min=30,
    rounds_before_long=3,
    auto_start=False,
    sound_enabled=False,
    sound_volume=0,
    notify_system=False,
    notify_in_app=False,
    do_not_disturb=True,
    relay_urls=("wss://relay.example.org", "ws://192.168.1.10:8765"),
    lan_enabled=False,
    theme=Theme.DARK,
)


def test_to_dict_is_json_ready_and_complete() -> None:
    data = CUSTOM.to_dict()
    assert tuple(data) == SETTING_KEYS
    assert data["theme"] == "dark"
    assert type(data["theme"]) is str
    assert data["relay_urls"] == ["wss://relay.example.org", "ws://192.168.1.10:8765"]
    assert json.loads(json.dumps(data)) == data


@pytest.mark.parametrize("settings", [Settings(), CUSTOM])
def test_from_dict_round_trips_through_json(settings: Settings) -> None:
    assert Settings.from_dict(json.loads(json.dumps(settings.to_dict()))) == settings


def test_from_dict_fills_missing_keys_with_defaults() -> None:
    assert Settings.from_dict({}) == Settings()
    assert Settings.from_dict({"focus_min": 45}) == Settings(focus_min=45)


def test_from_dict_ignores_unknown_keys_from_newer_versions() -> None:
    data = {**CUSTOM.to_dict(), "focus_music": "rain", "schema": 7}
    assert Settings.from_dict(data) == CUSTOM


def test_from_dict_accepts_integral_floats_as_ints() -> None:
    settings = Settings.from_dict({"focus_min": 30.0, "sound_volume": 0.0})
    assert settings.focus_min == 30
    assert type(settings.focus_min) is int
    assert type(settings.sound_volume) is int


def test_from_dict_accepts_a_tuple_of_relay_urls() -> None:
    settings = Settings.from_dict({"relay_urls": ("wss://relay.example.org",)})
    assert settings.relay_urls == ("wss://relay.example.org",)


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"focus_min": 25.5}, "focus_min"),
        ({"focus_min": math.nan}, "focus_min"),
        ({"focus_min": math.inf}, "focus_min"),
        ({"focus_min": 61.0}, "focus_min"),
        ({"focus_min": "25"}, "focus_min"),
        ({"focus_min": True}, "focus_min"),
        ({"sound_volume": None}, "sound_volume"),
        ({"auto_start": 1}, "auto_start"),
        ({"auto_start": "yes"}, "auto_start"),
        ({"theme": "blue"}, "theme"),
        ({"theme": "DARK"}, "theme"),
        ({"theme": 2}, "theme"),
        ({"relay_urls": "wss://relay.example.org"}, "relay_urls"),
        ({"relay_urls": [1]}, "relay_urls"),
        ({"relay_urls": ["http://relay.example.org"]}, "relay_urls"),
        ({"relay_urls": {"wss://relay.example.org": True}}, "relay_urls"),
    ],
)
def test_from_dict_rejects_wrong_types_and_values(data: dict[str, object], field: str) -> None:
    with pytest.raises(ValidationError, match=rf"^{field}"):
        Settings.from_dict(data)


@pytest.mark.parametrize("data", [[], "focus_min=25", None])
def test_from_dict_rejects_a_non_mapping(data: object) -> None:
    with pytest.raises(ValidationError, match=r"^settings must be a mapping"):
        Settings.from_dict(data)  # type: ignore[arg-type]


# --- replace -------------------------------------------------------------------------------------


def test_replace_returns_a_changed_copy() -> None:
    settings = Settings()
    changed = settings.replace(focus_min=50, theme=Theme.LIGHT)
    assert (changed.focus_min, changed.theme) == (50, Theme.LIGHT)
    assert settings == Settings()


def test_replace_validates_the_change() -> None:
    with pytest.raises(ValidationError, match=r"^short_break_min must be .* from 1 to 30"):
        Settings().replace(short_break_min=31)


def test_replace_rejects_unknown_keys_listing_valid_ones() -> None:
    with pytest.raises(ValidationError, match=r"unknown setting 'volume'; valid keys: focus_min,"):
        Settings().replace(volume=10)


# --- parse_setting -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("true", True),
        ("on", True),
        ("yes", True),
        ("false", False),
        ("off", False),
        ("no", False),
        ("TRUE", True),
        ("Off", False),
        (" yes ", True),
    ],
)
@pytest.mark.parametrize("key", BOOL_KEYS)
def test_parse_setting_reads_bool_words(key: str, text: str, value: bool) -> None:
    assert parse_setting(key, text) == (key, value)


@pytest.mark.parametrize("text", ["1", "0", "y", "enabled", "", "truee"])
def test_parse_setting_rejects_other_bool_words(text: str) -> None:
    with pytest.raises(ValidationError, match=r"^auto_start must be one of true, on, yes, false"):
        parse_setting("auto_start", text)


@pytest.mark.parametrize(
    ("key", "text", "value"),
    [
        ("focus_min", "30", 30),
        ("focus_min", " 60 ", 60),
        ("focus_min", "+1", 1),
        ("focus_min", "007", 7),
        ("short_break_min", "30", 30),
        ("long_break_min", "1", 1),
        ("rounds_before_long", "12", 12),
        ("sound_volume", "0", 0),
        ("sound_volume", "100", 100),
    ],
)
def test_parse_setting_reads_ints(key: str, text: str, value: int) -> None:
    parsed = parse_setting(key, text)
    assert parsed == (key, value)
    assert type(parsed[1]) is int


@pytest.mark.parametrize("text", ["", "abc", "2.5", "25.0", "1e1", "1_0", "٣", "0x10", "25 min"])
def test_parse_setting_rejects_text_that_is_not_a_whole_number(text: str) -> None:
    with pytest.raises(ValidationError, match=r"^focus_min must be a whole number from 1 to 60"):
        parse_setting("focus_min", text)


@pytest.mark.parametrize(
    ("key", "text"), [("focus_min", "0"), ("focus_min", "61"), ("sound_volume", "-1")]
)
def test_parse_setting_rejects_ints_out_of_range(key: str, text: str) -> None:
    with pytest.raises(ValidationError, match=rf"^{key} must be a whole number from"):
        parse_setting(key, text)


@pytest.mark.parametrize(
    ("text", "theme"),
    [("light", Theme.LIGHT), ("Dark", Theme.DARK), (" SYSTEM ", Theme.SYSTEM)],
)
def test_parse_setting_reads_theme_names(text: str, theme: Theme) -> None:
    assert parse_setting("theme", text) == ("theme", theme)


def test_parse_setting_rejects_unknown_themes_listing_them() -> None:
    with pytest.raises(ValidationError, match=r"^theme must be one of light, dark, system"):
        parse_setting("theme", "solarized")


@pytest.mark.parametrize(
    ("text", "urls"),
    [
        ("wss://a.example.org", ("wss://a.example.org",)),
        (
            "wss://a.example.org, ws://10.0.0.2:8765",
            ("wss://a.example.org", "ws://10.0.0.2:8765"),
        ),
        (
            "wss://a.example.org,,wss://b.example.org,",
            ("wss://a.example.org", "wss://b.example.org"),
        ),
        ("", ()),
        (" , ", ()),
    ],
)
def test_parse_setting_reads_comma_separated_relay_urls(text: str, urls: tuple[str, ...]) -> None:
    assert parse_setting("relay_urls", text) == ("relay_urls", urls)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("https://a.example.org", "must start with ws:// or wss://"),
        ("wss://a.example.org,wss://a.example.org/", "lists the same relay twice"),
        (",".join(f"wss://r{i}.example.org" for i in range(9)), "holds at most 8"),
    ],
)
def test_parse_setting_rejects_bad_relay_urls(text: str, problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        parse_setting("relay_urls", text)


@pytest.mark.parametrize(
    ("key", "name"),
    [("Focus_Min", "focus_min"), ("focus-min", "focus_min"), (" sound-volume ", "sound_volume")],
)
def test_parse_setting_normalises_key_spelling(key: str, name: str) -> None:
    assert parse_setting(key, "10")[0] == name


@pytest.mark.parametrize("key", ["volume", "", "focus", "__class__", "replace"])
def test_parse_setting_rejects_unknown_keys_listing_valid_ones(key: str) -> None:
    with pytest.raises(ValidationError) as excinfo:
        parse_setting(key, "1")
    message = str(excinfo.value)
    assert message.startswith(f"unknown setting {key!r}; valid keys: ")
    assert all(name in message for name in SETTING_KEYS)


def test_parse_setting_output_feeds_replace_for_every_key() -> None:
    """What the CLI does: parse each setting's text form and apply it."""
    texts = {
        **dict.fromkeys(BOOL_KEYS, "off"),
        **{key: str(low) for key, (low, _) in INT_RANGES.items()},
        "theme": "light",
        "relay_urls": "wss://relay.example.org",
    }
    settings = Settings()
    for key in SETTING_KEYS:
        name, value = parse_setting(key, texts[key])
        settings = settings.replace(**{name: value})
    assert settings.theme is Theme.LIGHT
    assert settings.relay_urls == ("wss://relay.example.org",)
    assert all(getattr(settings, key) is False for key in BOOL_KEYS)
    assert all(getattr(settings, key) == low for key, (low, _) in INT_RANGES.items())
