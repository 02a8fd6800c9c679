"""The settings dialog: what a user changes there is what the profile keeps and the engine does."""

from __future__ import annotations

import asyncio
from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QPalette
from PySide6.QtWidgets import QApplication, QDialogButtonBox
from pytestqt.qtbot import QtBot

from focusmate.settings import Theme
from focusmate.timer import Phase
from tests.integration.relaykit import base_url, running_relay
from tests.ui.uikit import run, session, until, workspace
from ui.session import Session
from ui.theme import apply_theme, is_dark, phase_color
from ui.viewmodels.settings import CONNECTED, CONNECTING, SettingsViewModel
from ui.widgets.settings_dialog import SettingsDialog


def open_dialog(qtbot: QtBot, s: Session) -> SettingsDialog:
    dialog = SettingsDialog(SettingsViewModel(s))
    qtbot.addWidget(dialog)
    dialog.show()
    return dialog


def press(dialog: SettingsDialog, which: QDialogButtonBox.StandardButton) -> None:
    dialog.buttons.button(which).click()


OK = QDialogButtonBox.StandardButton.Ok


def test_ok_saves_the_focus_length(tmp_path: Path, qtbot: QtBot) -> None:
    ws = workspace(tmp_path / "me")
    dialog = open_dialog(qtbot, session(ws))
    assert dialog.focus_spin.value() == 25

    dialog.focus_spin.setValue(50)
    dialog.sound_check.setChecked(False)
    press(dialog, OK)

    assert ws.settings.focus_min == 50
    assert ws.settings.sound_enabled is False
    assert not dialog.isVisible()


def test_a_focus_of_zero_minutes_is_refused_and_nothing_is_saved(
    tmp_path: Path, qtbot: QtBot
) -> None:
    ws = workspace(tmp_path / "me", name="Ada")
    dialog = open_dialog(qtbot, session(ws))
    dialog.tabs.setCurrentIndex(dialog.tabs.count() - 1)  # the user is on another tab

    dialog.focus_spin.setValue(0)
    dialog.name_edit.setText("Grace")  # valid, but OK saves all or nothing
    press(dialog, OK)

    message = dialog.field_messages["focus_min"]
    assert message.isVisible()
    assert message.text() == "Focus length must be a whole number from 1 to 60, got 0"
    assert dialog.tabs.tabText(dialog.tabs.currentIndex()) == "Timer"
    assert dialog.isVisible()
    assert ws.settings.focus_min == 25
    assert ws.display_name == "Ada"

    dialog.focus_spin.setValue(30)  # fixed: the message goes and everything is saved
    press(dialog, OK)
    assert not message.isVisible()
    assert ws.settings.focus_min == 30
    assert ws.display_name == "Grace"


def test_the_profile_is_saved_and_signed_with_the_new_name(tmp_path: Path, qtbot: QtBot) -> None:
    ws = workspace(tmp_path / "me", name="Ada")
    s = session(ws)
    dialog = open_dialog(qtbot, s)
    assert dialog.name_edit.text() == "Ada"

    dialog.name_edit.setText("  Ada   Lovelace ")
    dialog.bio_edit.setPlainText("Counting engines.")
    dialog.emoji_edit.setText("🦉")
    plum = next(b for b in dialog.swatches.buttons() if b.toolTip() == "Plum")
    plum.click()
    assert dialog.avatar_preview.emoji == "🦉"
    assert dialog.avatar_preview.color.name().upper() == "#8E5BB5"
    press(dialog, QDialogButtonBox.StandardButton.Apply)

    assert ws.display_name == "Ada Lovelace"
    card = ws.my_profile()
    assert card is not None
    assert (card.card.bio, card.card.avatar_emoji, card.card.avatar_color) == (
        "Counting engines.",
        "🦉",
        "#8E5BB5",
    )
    assert dialog.name_edit.text() == "Ada Lovelace"  # shown as saved
    assert dialog.isVisible()  # Apply keeps the dialog open


def test_an_emoji_that_is_not_one_is_refused_beside_the_field(tmp_path: Path, qtbot: QtBot) -> None:
    ws = workspace(tmp_path / "me", name="Ada")
    dialog = open_dialog(qtbot, session(ws))
    dialog.emoji_edit.setText("ab")
    press(dialog, OK)
    assert dialog.field_messages["avatar_emoji"].text() == "The avatar must be a single emoji."
    assert dialog.tabs.tabText(dialog.tabs.currentIndex()) == "Profile"
    assert ws.my_profile() is not None
    assert ws.my_profile().card.avatar_emoji == "🍅"  # type: ignore[union-attr]


def test_choosing_dark_saves_it_and_asks_the_app_to_apply_it(tmp_path: Path, qtbot: QtBot) -> None:
    ws = workspace(tmp_path / "me")
    vm = SettingsViewModel(session(ws))
    themes: list[object] = []
    vm.themeChanged.connect(themes.append)
    dialog = SettingsDialog(vm)
    qtbot.addWidget(dialog)
    dark = next(b for b in dialog.theme_group.buttons() if b.text() == "Dark")
    dark.click()
    press(dialog, OK)
    assert ws.settings.theme is Theme.DARK
    assert themes == [Theme.DARK]


def test_the_view_model_names_the_field_it_refuses(tmp_path: Path) -> None:
    ws = workspace(tmp_path / "me")
    vm = SettingsViewModel(session(ws))
    errors: list[str] = []
    vm.error.connect(errors.append)
    assert vm.save(short_break_min=45) is False
    assert errors == ["Short break length must be a whole number from 1 to 30, got 45"]
    assert ws.settings.short_break_min == 5
    assert vm.save(short_break_min=10, auto_start=False) is True
    assert (ws.settings.short_break_min, ws.settings.auto_start) == (10, False)


def test_a_relay_address_that_is_not_a_url_is_refused(
    tmp_path: Path, qtbot: QtBot, qloop: asyncio.AbstractEventLoop
) -> None:
    ws = workspace(tmp_path / "me")
    dialog = open_dialog(qtbot, session(ws))
    dialog.tabs.setCurrentIndex(2)

    async def scenario() -> None:
        qtbot.keyClicks(dialog.relay_input, "not a url")
        qtbot.keyClick(dialog.relay_input, Qt.Key.Key_Return)
        await until(dialog.relay_error.isVisible, "the relay address message")

    run(qloop, scenario())
    assert dialog.isVisible()  # Enter added (or tried to add) the relay; it did not press OK
    assert dialog.relay_error.text() == (
        "Relay address 'not a url' must not contain spaces or control characters"
    )
    assert dialog.relay_input.text() == "not a url"  # kept, to be corrected
    assert dialog.relay_list.count() == 0
    assert ws.settings.relay_urls == ()


def test_a_relay_added_connects_live_and_removing_it_drops_the_link(
    tmp_path: Path, qtbot: QtBot, qloop: asyncio.AbstractEventLoop
) -> None:
    ws = workspace(tmp_path / "me")
    s = session(ws)
    dialog = open_dialog(qtbot, s)
    dialog.tabs.setCurrentIndex(2)

    async def scenario() -> None:
        await s.start()
        try:
            async with running_relay(tmp_path / "relay") as relay:
                url = base_url(relay)
                dialog.relay_input.setText(url)
                dialog.add_relay_button.click()
                await until(lambda: dialog.relay_list.count() == 1, "the relay in the list")
                assert dialog.relay_input.text() == ""
                assert ws.settings.relay_urls == (url,)
                await until(
                    lambda: dialog.relay_list.item(0).text() == f"{url}  ·  {CONNECTED}",
                    "the relay to show Connected",
                )
                dialog.grab().save("/tmp/settings_network.png")

                dialog.relay_list.item(0).setSelected(True)
                dialog.remove_relay_button.click()
                await until(lambda: dialog.relay_list.count() == 0, "the relay to go")
                assert [link.url for link in s.engine.links] == []
                assert ws.settings.relay_urls == ()
        finally:
            await s.stop()

    run(qloop, scenario())


def test_relay_status_reads_connecting_until_the_link_is_up(tmp_path: Path) -> None:
    ws = workspace(tmp_path / "me")
    s = session(ws)
    vm = SettingsViewModel(s)
    url = "wss://relay.example.org"
    ws.save_settings(ws.settings.replace(relay_urls=(url,)))
    assert vm.relay_status() == [(url, CONNECTING)]
    s.link_state[url] = True
    assert vm.relay_status() == [(url, CONNECTED)]


def test_turning_lan_discovery_off_leaves_the_lan_now(
    tmp_path: Path, qtbot: QtBot, qloop: asyncio.AbstractEventLoop
) -> None:
    ws = workspace(tmp_path / "me")
    s = session(ws, lan=True)
    dialog = open_dialog(qtbot, s)
    dialog.tabs.setCurrentIndex(2)

    async def scenario() -> None:
        await s.start()
        try:
            assert s.engine.lan is not None
            assert dialog.lan_check.isChecked()
            qtbot.mouseClick(dialog.lan_check, Qt.MouseButton.LeftButton)
            await until(lambda: s.engine.lan is None, "the engine to leave the LAN")
            assert ws.settings.lan_enabled is False
        finally:
            await s.stop()

    run(qloop, scenario())


def test_apply_theme_turns_the_window_dark_and_light(restored_look: QApplication) -> None:
    window = QPalette.ColorRole.Window
    apply_theme(restored_look, Theme.DARK)
    assert restored_look.palette().color(window).lightness() < 128
    assert is_dark(restored_look)
    apply_theme(restored_look, Theme.LIGHT)
    assert restored_look.palette().color(window).lightness() >= 128
    assert not is_dark(restored_look)


def test_phase_colours_stay_readable_on_their_window(restored_look: QApplication) -> None:
    for dark in (False, True):
        apply_theme(restored_look, Theme.DARK if dark else Theme.LIGHT)
        window = restored_look.palette().color(QPalette.ColorRole.Window).lightness()
        for phase in Phase:
            gap = abs(phase_color(phase, dark=dark).lightness() - window)
            assert gap > 90, (phase, dark)
