"""The desktop bundle: the menu entry and icons as committed, ``install.sh`` on a stand-in
folder (fast), then the real one-folder build (slow): the bundled app opens its window
offscreen on a fresh profile, its command line works, and ``install.sh`` installs it."""

from __future__ import annotations

import configparser
import importlib.util
import json
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from PySide6.QtGui import QColor, QImage

from tests.packaging import REPO, outside_env
from tests.ui.test_app_snapshot import assert_window_png

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="the desktop bundle is for Linux (XDG)"
)

DESKTOP = REPO / "packaging" / "desktop"
ENTRY = DESKTOP / "focusmate.desktop"
ICONS = {
    "hicolor/256x256/apps/focusmate.png": 256,
    "hicolor/512x512/apps/focusmate.png": 512,
}
TOMATO = QColor("#E4572E")  # the icon's centre, from ui/assets/focusmate.svg
APP_DEADLINE_S = 60


def load(path: Path) -> ModuleType:
    """A script under packaging/ as a module (packaging/ is no package: that name is taken)."""
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    spec.loader.exec_module(module)
    return module


def read_entry(path: Path) -> dict[str, str]:
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    parser.read(path, encoding="utf-8")
    return dict(parser["Desktop Entry"])


def app_desktop_file_name() -> str:
    """The name ui/app.py gives Qt: the Wayland app id, and what the menu entry must match."""
    found = re.search(r'setDesktopFileName\("([^"]+)"\)', (REPO / "ui" / "app.py").read_text())
    assert found, "ui/app.py no longer calls setDesktopFileName"
    return found.group(1)


def validate(path: Path) -> None:
    done = subprocess.run(
        ["desktop-file-validate", str(path)], capture_output=True, text=True, check=False
    )
    errors = [line for line in done.stdout.splitlines() if "error:" in line]
    assert done.returncode == 0 and not errors, done.stdout + done.stderr


# -- the menu entry and the icons, as committed ------------------------------------------------


def test_menu_entry_names_the_app_its_icon_and_its_window() -> None:
    entry = read_entry(ENTRY)
    assert entry["Type"] == "Application"
    assert entry["Name"] == "FocusMate"
    assert entry["Exec"] == "focusmate"
    assert entry["Icon"] == "focusmate"
    assert entry["Categories"] == "Office;Utility;"
    assert {"pomodoro", "focus", "timer"} <= set(entry["Keywords"].split(";"))
    # Docks group the window under this entry only if both names match the app's.
    assert entry["StartupWMClass"] == app_desktop_file_name() == ENTRY.stem


@pytest.mark.skipif(
    shutil.which("desktop-file-validate") is None,
    reason="desktop-file-validate is not installed (Debian: desktop-file-utils); "
    "the entry's keys are still checked with configparser",
)
def test_menu_entry_passes_desktop_file_validate() -> None:
    validate(ENTRY)


def test_icons_are_the_svg_rendered_at_each_size(qapp: object) -> None:
    render_icons = load(DESKTOP / "render_icons.py")
    committed = {DESKTOP / "icons" / name: size for name, size in ICONS.items()}
    committed[REPO / "ui" / "assets" / "focusmate.png"] = 256
    for path, size in committed.items():
        image = QImage(str(path))
        assert (image.width(), image.height()) == (size, size), path
        assert image.pixelColor(size // 2, size // 2 + size // 10) == TOMATO, path
        assert image.pixelColor(1, 1).alpha() == 0, f"{path}: the corners are not transparent"
        # Stale after an edit of the SVG? Re-render and compare (antialiasing may differ a bit).
        fresh = render_icons.render(render_icons.SVG, size).convertToFormat(image.format())
        off = sum(
            1
            for x in range(0, size, 2)
            for y in range(0, size, 2)
            if abs(QColor(fresh.pixel(x, y)).lightness() - QColor(image.pixel(x, y)).lightness())
            > 16
        )
        assert off < (size // 2) ** 2 // 100, f"{path} is stale: run {DESKTOP / 'render_icons.py'}"


# -- install.sh, on a stand-in folder -----------------------------------------------------------


def stand_in_bundle(folder: Path) -> Path:
    """What the build puts around the executable, with a shell script as the executable."""
    folder.mkdir(parents=True)
    load(REPO / "packaging" / "build_desktop.py").add_desktop_files(folder)
    executable = folder / "focusmate"
    executable.write_text('#!/bin/sh\necho "stand-in focusmate $*"\n')
    executable.chmod(0o755)
    return folder


def run_installer(script: Path, home: Path, *args: str, data: str | None) -> str:
    env = outside_env(HOME=str(home))
    env.pop("XDG_DATA_HOME", None)
    if data is not None:
        env["XDG_DATA_HOME"] = data
    done = subprocess.run(
        ["sh", str(script), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout + done.stderr


def installed_files(home: Path, data: Path) -> list[Path]:
    return [
        data / "applications" / "focusmate.desktop",
        *(data / "icons" / name for name in [*ICONS, "hicolor/scalable/apps/focusmate.svg"]),
        home / ".local" / "bin" / "focusmate",
    ]


def assert_installed(home: Path, data: Path) -> Path:
    """Every link resolves into ~/.local/opt/FocusMate; the menu entry runs the copy there."""
    opt = home / ".local" / "opt" / "FocusMate"
    for link in installed_files(home, data):
        assert link.is_symlink(), f"{link} is not linked"
        assert link.resolve().is_file() and link.resolve().is_relative_to(opt.resolve()), link
    entry = read_entry(data / "applications" / "focusmate.desktop")
    assert entry["Exec"] == f'"{opt}/focusmate"'
    assert entry["TryExec"] == f"{opt}/focusmate"
    assert entry["Icon"] == "focusmate" and entry["StartupWMClass"] == "focusmate"
    assert os.stat(opt / "focusmate").st_mode & stat.S_IXUSR
    if shutil.which("desktop-file-validate"):
        validate(data / "applications" / "focusmate.desktop")
    return opt


@pytest.mark.parametrize("xdg_data_home", ["absolute", "unset", "relative"])
def test_install_sh_links_the_app_into_the_menu_then_uninstalls(
    tmp_path: Path, xdg_data_home: str
) -> None:
    folder = stand_in_bundle(tmp_path / "download" / "FocusMate")
    home = tmp_path / "home"
    home.mkdir()
    given = {"absolute": str(tmp_path / "xdg-data"), "unset": None, "relative": "rel/data"}
    # The XDG spec: a relative XDG_DATA_HOME is invalid and is ignored, like an unset one.
    data = tmp_path / "xdg-data" if xdg_data_home == "absolute" else home / ".local/share"
    neighbour = data / "applications" / "other.desktop"
    neighbour.parent.mkdir(parents=True)
    neighbour.write_text("[Desktop Entry]\n")

    run_installer(folder / "install.sh", home, data=given[xdg_data_home])
    opt = assert_installed(home, data)
    shutil.rmtree(tmp_path / "download")  # the install does not depend on the download
    command = subprocess.run(
        [str(home / ".local/bin/focusmate"), "--version"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert command.stdout.strip() == "stand-in focusmate --version"

    # Again, from the installed copy (an update in place): still whole.
    run_installer(opt / "install.sh", home, data=given[xdg_data_home])
    assert_installed(home, data)

    run_installer(opt / "install.sh", home, "--uninstall", data=given[xdg_data_home])
    assert not opt.exists()
    for link in installed_files(home, data):
        assert not link.exists() and not link.is_symlink(), link
    assert neighbour.read_text() == "[Desktop Entry]\n"  # others' entries are left alone


def test_install_sh_leaves_another_focusmate_command_alone(tmp_path: Path) -> None:
    folder = stand_in_bundle(tmp_path / "FocusMate")
    home = tmp_path / "home"
    pip_script = home / ".local" / "bin" / "focusmate"
    pip_script.parent.mkdir(parents=True)
    pip_script.write_text("#!/bin/sh\necho pip\n")
    out = run_installer(folder / "install.sh", home, data=None)
    assert "left" in out and str(pip_script) in out
    assert not pip_script.is_symlink() and pip_script.read_text() == "#!/bin/sh\necho pip\n"
    run_installer(folder / "install.sh", home, "--uninstall", data=None)
    assert pip_script.read_text() == "#!/bin/sh\necho pip\n"


# -- the real build -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``packaging/build_desktop.py`` into a temporary directory, once for this module."""
    out = tmp_path_factory.mktemp("desktop-dist")
    build = [sys.executable, str(REPO / "packaging" / "build_desktop.py")]
    done = subprocess.run(
        [*build, "--out", str(out), "--quiet"],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.returncode == 0, f"build failed:\n{done.stdout}\n{done.stderr[-6000:]}"
    summary = done.stdout.splitlines()[0]
    print(summary)  # the size and build time, in the test log
    assert re.search(r"FocusMate: [\d.]+ MB in \d+ files, built in [\d.]+ s$", summary), summary
    return out / "FocusMate"


def bundled(executable: Path, *args: str, home: Path) -> subprocess.CompletedProcess[str]:
    """The bundled command, as a user would run it: offscreen, outside the source tree."""
    return subprocess.run(
        [str(executable), *args],
        cwd=home,
        env=outside_env(QT_QPA_PLATFORM="offscreen", HOME=str(home)),
        capture_output=True,
        text=True,
        timeout=APP_DEADLINE_S,
        check=False,
    )


@pytest.mark.slow
@pytest.mark.timeout(1200)  # the first test also waits for the build
@pytest.mark.skipif(
    importlib.util.find_spec("PyInstaller") is None,
    reason="PyInstaller is not installed (pip install '.[packaging]')",
)
class TestBuiltBundle:
    def test_the_bundled_app_opens_its_window_on_a_fresh_profile(
        self, bundle: Path, tmp_path: Path
    ) -> None:
        profile, png = tmp_path / "profile", tmp_path / "window.png"
        done = bundled(
            bundle / "focusmate",
            *("--profile", str(profile), "app", "--snapshot", str(png)),
            home=tmp_path,
        )
        assert done.returncode == 0, done.stderr
        assert_window_png(png)
        assert (profile / "identity.key").is_file()  # created by the app, on first run
        identity = bundled(
            bundle / "focusmate", "--profile", str(profile), "id", "--json", home=tmp_path
        )
        assert json.loads(identity.stdout)["user_id"], identity.stderr

    def test_the_bundled_command_line_works(self, bundle: Path, tmp_path: Path) -> None:
        exe, profile = bundle / "focusmate", str(tmp_path / "profile")
        assert bundled(exe, "--version", home=tmp_path).stdout.startswith("focusmate ")
        created = bundled(exe, "--profile", profile, "room", "create", "Deep Work", home=tmp_path)
        assert created.returncode == 0, created.stderr
        listed = bundled(exe, "--profile", profile, "room", "list", "--json", home=tmp_path)
        assert [room["name"] for room in json.loads(listed.stdout)] == ["Deep Work"]

    def test_the_bundle_has_every_qt_part_the_window_loads_and_no_unused_ones(
        self, bundle: Path
    ) -> None:
        qt = bundle / "_internal" / "PySide6" / "Qt"
        for plugin in [
            "platforms/libqoffscreen.so",
            "platforms/libqxcb.so",
            "platforms/libqwayland.so",
            "imageformats/libqsvg.so",
            "iconengines/libqsvgicon.so",
            "multimedia/libffmpegmediaplugin.so",
        ]:
            assert (qt / "plugins" / plugin).is_file(), plugin
        for module in ["QtWidgets", "QtCharts", "QtMultimedia", "QtSvg"]:
            assert list((bundle / "_internal" / "PySide6").glob(f"{module}.*.so")), module
        assert (bundle / "_internal" / "ui" / "assets" / "focusmate.svg").is_file()
        assert not (qt / "translations").exists()
        assert not list(qt.rglob("*VirtualKeyboard*")) and not list(qt.rglob("libqvnc.so"))
        assert not list(bundle.rglob("*tkinter*")) and not list(bundle.rglob("_pytest"))
        assert not [path for path in bundle.rglob("*") if not path.exists()], "broken links"

    @pytest.mark.skipif(shutil.which("ldd") is None, reason="ldd is not installed")
    def test_every_bundled_qt_library_finds_the_qt_libraries_it_needs(self, bundle: Path) -> None:
        """Trimming must not cut a library out from under a plugin. System libraries (X11,
        Wayland, GTK) come from the desktop and may be absent on a build machine."""
        bundled_prefixes = ("libQt6", "libpyside6", "libshiboken6", "libav", "libsw", "libicu")
        missing = set()
        for library in (bundle / "_internal" / "PySide6").rglob("*.so*"):
            if library.is_symlink():
                continue
            ldd = subprocess.run(["ldd", str(library)], capture_output=True, text=True, check=False)
            out = ldd.stdout
            for line in out.splitlines():
                name = line.strip().split(" ")[0]
                if "not found" in line and name.startswith(bundled_prefixes):
                    missing.add(f"{library.relative_to(bundle)} needs {name}")
        assert not missing, "\n".join(sorted(missing))

    def test_install_sh_installs_the_bundle_for_the_user(
        self, bundle: Path, tmp_path: Path
    ) -> None:
        home, data = tmp_path / "home", tmp_path / "data"
        home.mkdir()
        run_installer(bundle / "install.sh", home, data=str(data))
        opt = assert_installed(home, data)
        assert (opt / "_internal").is_dir()
        done = bundled(home / ".local" / "bin" / "focusmate", "--version", home=home)
        assert done.returncode == 0 and done.stdout.startswith("focusmate "), done.stderr
        run_installer(opt / "install.sh", home, "--uninstall", data=str(data))
        assert not opt.exists()
