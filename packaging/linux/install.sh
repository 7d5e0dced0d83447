#!/bin/sh
# Install (or remove) DINO Desktop's menu entry, icons and AppStream metadata.
#
#   packaging/linux/install.sh                  # for you: ~/.local/share (XDG_DATA_HOME)
#   sudo packaging/linux/install.sh --prefix /usr/local      # for everyone
#   packaging/linux/install.sh --exec /opt/dino-desktop/dino-desktop  # a PyInstaller bundle
#   packaging/linux/install.sh --uninstall [--prefix DIR]
#
# The app itself comes from `pip install .` (which puts `dino-desktop-gui` on
# PATH: the .desktop file's Exec) or from the PyInstaller bundle (--exec).
# --destdir DIR stages everything under DIR (for distribution packages).
set -eu

ID=io.github.dino_desktop.DinoDesktop
HERE=$(cd "$(dirname "$0")" && pwd)
RES="$HERE/../../resources"
DATA="${XDG_DATA_HOME:-$HOME/.local/share}"
DESTDIR=""
EXEC=""
UNINSTALL=0

while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) DATA="$2/share"; shift 2 ;;
        --destdir) DESTDIR="$2"; shift 2 ;;
        --exec) EXEC="$2"; shift 2 ;;
        --uninstall) UNINSTALL=1; shift ;;
        -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
        *) echo "install.sh: unknown option: $1" >&2; exit 2 ;;
    esac
done

ROOT="$DESTDIR$DATA"
SIZES="16 24 32 48 64 128 256 512"

if [ "$UNINSTALL" = 1 ]; then
    rm -f "$ROOT/applications/$ID.desktop" "$ROOT/metainfo/$ID.metainfo.xml" \
          "$ROOT/icons/hicolor/scalable/apps/$ID.svg"
    for s in $SIZES; do rm -f "$ROOT/icons/hicolor/${s}x${s}/apps/$ID.png"; done
else
    install -Dm644 "$HERE/$ID.desktop" "$ROOT/applications/$ID.desktop"
    if [ -n "$EXEC" ]; then
        sed -i "s|^Exec=.*|Exec=$EXEC|" "$ROOT/applications/$ID.desktop"
    fi
    install -Dm644 "$HERE/$ID.metainfo.xml" "$ROOT/metainfo/$ID.metainfo.xml"
    install -Dm644 "$RES/dino-desktop.svg" "$ROOT/icons/hicolor/scalable/apps/$ID.svg"
    for s in $SIZES; do
        install -Dm644 "$RES/icons/dino-desktop-$s.png" "$ROOT/icons/hicolor/${s}x${s}/apps/$ID.png"
    done
fi

# Refresh the caches the desktop reads (best effort: not every system has them).
if [ -z "$DESTDIR" ]; then
    if command -v update-desktop-database >/dev/null 2>&1; then
        update-desktop-database -q "$ROOT/applications" || true
    fi
    if command -v gtk-update-icon-cache >/dev/null 2>&1; then
        gtk-update-icon-cache -q -t -f "$ROOT/icons/hicolor" || true
    fi
fi

if [ "$UNINSTALL" = 1 ]; then
    echo "Removed $ID from $ROOT"
else
    echo "Installed $ID into $ROOT"
    if [ -z "$EXEC" ] && ! command -v dino-desktop-gui >/dev/null 2>&1; then
        echo "note: dino-desktop-gui is not on PATH; install the app (pip install .) or use --exec" >&2
    fi
fi
