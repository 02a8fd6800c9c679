#!/bin/sh
# Install this FocusMate folder for the current user; no root needed.
#
#   the app        ~/.local/opt/FocusMate (a copy of this folder)
#   the menu entry $XDG_DATA_HOME/applications/focusmate.desktop (a link into the copy)
#   the icons      $XDG_DATA_HOME/icons/hicolor/<size>/apps/focusmate.* (links into the copy)
#   the command    ~/.local/bin/focusmate (a link), unless another focusmate is already there
#
# XDG_DATA_HOME defaults to ~/.local/share. Running it again updates the install in place.
# `./install.sh --uninstall` removes all of the above; profiles and rooms are left alone.
set -eu

usage() {
    echo "usage: $0 [--uninstall]" >&2
    exit 2
}
[ $# -le 1 ] || usage
mode=${1:-install}
case $mode in install | --uninstall) ;; *) usage ;; esac

: "${HOME:?HOME is not set}"
data=${XDG_DATA_HOME:-}
case $data in /*) ;; *) data=$HOME/.local/share ;; esac # the spec says: ignore a relative value
opt=$HOME/.local/opt/FocusMate
bin=$HOME/.local/bin
entry=$data/applications/focusmate.desktop
icons="hicolor/256x256/apps/focusmate.png hicolor/512x512/apps/focusmate.png
hicolor/scalable/apps/focusmate.svg"
here=$(cd "$(dirname "$0")" && pwd -P)

# Whether $1 is a link into the installed folder: only those are replaced or removed freely.
ours() {
    [ -L "$1" ] || return 1
    case $(readlink "$1") in "$opt"/*) return 0 ;; esac
    return 1
}

unlink_ours() {
    if ours "$1"; then rm -f "$1"; fi
}

# Menus and icon caches notice the change sooner; both tools are optional. An icon cache is
# only refreshed where one exists: a stale one would hide icons added later by other apps.
refresh() {
    if command -v update-desktop-database >/dev/null 2>&1; then
        update-desktop-database -q "$data/applications" 2>/dev/null || true
    fi
    if [ -f "$data/icons/hicolor/icon-theme.cache" ] && command -v gtk-update-icon-cache >/dev/null 2>&1; then
        gtk-update-icon-cache -q -t "$data/icons/hicolor" 2>/dev/null || true
    fi
}

if [ "$mode" = --uninstall ]; then
    unlink_ours "$entry"
    for icon in $icons; do unlink_ours "$data/icons/$icon"; done
    unlink_ours "$bin/focusmate"
    rm -rf "$opt"
    refresh
    echo "FocusMate is uninstalled (your profile is still in ~/.local/share/FocusMate)."
    exit 0
fi

# The menu entry runs the app by its full path, quoted; these characters would need escaping.
case $opt in
*[\"\`\$\\%\|\&]*)
    echo "install.sh: cannot install under $opt: the path has characters a menu entry cannot hold" >&2
    exit 1
    ;;
esac

if [ "$here" != "$opt" ]; then
    # Copy next to the old install first, so a failed copy leaves a working one behind.
    mkdir -p "$(dirname "$opt")"
    rm -rf "$opt.new"
    cp -RP "$here" "$opt.new"
    rm -rf "$opt"
    mv "$opt.new" "$opt"
fi

# Menus do not always search ~/.local/bin, so the installed entry names the app by its path.
sed -e "s|^Exec=.*|Exec=\"$opt/focusmate\"|" -e "s|^TryExec=.*|TryExec=$opt/focusmate|" \
    "$opt/focusmate.desktop" >"$opt/focusmate.desktop.new"
mv "$opt/focusmate.desktop.new" "$opt/focusmate.desktop"

mkdir -p "$data/applications"
ln -sfn "$opt/focusmate.desktop" "$entry"
for icon in $icons; do
    mkdir -p "$data/icons/$(dirname "$icon")"
    ln -sfn "$opt/icons/$icon" "$data/icons/$icon"
done
mkdir -p "$bin"
if ours "$bin/focusmate" || { [ ! -e "$bin/focusmate" ] && [ ! -L "$bin/focusmate" ]; }; then
    ln -sfn "$opt/focusmate" "$bin/focusmate"
else
    echo "install.sh: left $bin/focusmate as it is (another focusmate is installed there)" >&2
fi
refresh
echo "FocusMate is installed in $opt and listed in your applications menu."
