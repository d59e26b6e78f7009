#!/usr/bin/env bash
# Install, upgrade or remove genre-daemon as a systemd service, from a clone of this repository.
#
#   sudo bash scripts/install-pi.sh [--mqtt-host H] [--mqtt-port P] [--device-id ID] [--mic NAME|INDEX]
#                                   [--username U] [--password-file F] [--no-start]
#   sudo bash scripts/install-pi.sh --upgrade      # reinstall the code from this clone, keep config + password
#   sudo bash scripts/install-pi.sh --uninstall    # remove the service and the venv, keep config + password
#   sudo bash scripts/install-pi.sh --purge        # --uninstall, and remove config + password too
#
# 64-bit Raspberry Pi OS / Debian Bookworm or Trixie (arm64), or x86-64. Idempotent: a second run
# changes only what is not already right, and restarts the service only if something changed.
# Environment (tests): GENRE_PI_PREFIX (default /opt/genre-pi: the venv goes to $GENRE_PI_PREFIX/.venv),
# GENRE_PI_ROOT (default empty: a directory every installed path is put under; never touches systemd),
# PYTHON (default python3).
# Exit codes: 0 done, 2 usage, 69 unsupported system, 77 not root, 78 the configuration fails its check.
set -euo pipefail

SRC="$(cd "$(dirname "$0")/.." && pwd)"
ROOT="${GENRE_PI_ROOT:-}"
PREFIX="${GENRE_PI_PREFIX:-/opt/genre-pi}"
PYTHON="${PYTHON:-python3}"
VENV="$ROOT$PREFIX/.venv"
ETC="$ROOT/etc/genre-daemon"
CONFIG="$ETC/config.toml"
PASSWORD="$ETC/mqtt_password"
UNIT_NAME=genre-daemon.service
UNIT="$ROOT/etc/systemd/system/$UNIT_NAME"
STAMP="$VENV/genre-pi-source.sha256"
# What pip needs to build pyaudio (no wheels) and what soundfile/PortAudio load at run time.
APT_PACKAGES=(python3 python3-venv python3-dev gcc libc6-dev portaudio19-dev libportaudio2 libsndfile1)

say() { echo "install-pi: $*"; }
die() {
    echo "install-pi: $1" >&2
    exit "${2:-1}"
}

usage() {
    sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
}

mode=install
no_start=0
password_file=""
username=""
config_args=()
while [ $# -gt 0 ]; do
    case "$1" in
        --upgrade) mode=upgrade ;;
        --uninstall) mode=uninstall ;;
        --purge) mode=purge ;;
        --no-start) no_start=1 ;;
        --mqtt-host | --mqtt-port | --device-id | --mic | --username | --password-file)
            [ $# -ge 2 ] && [ -n "$2" ] || die "$1 needs a value (see --help)" 2
            case "$1" in
                --mqtt-host) config_args+=("mqtt.host=$2") ;;
                --mqtt-port)
                    [[ "$2" =~ ^[0-9]+$ ]] && [ "$2" -ge 1 ] && [ "$2" -le 65535 ] ||
                        die "--mqtt-port $2: not a port number (1-65535)" 2
                    config_args+=("mqtt.port=$2")
                    ;;
                --device-id) config_args+=("mqtt.device_id=$2") ;;
                --mic) config_args+=("source.kind=mic" "source.device=$2") ;;
                --username)
                    config_args+=("mqtt.username=$2")
                    username="$2"
                    ;;
                --password-file) password_file="$2" ;;
            esac
            shift
            ;;
        -h | --help)
            usage
            exit 0
            ;;
        *) die "unknown argument $1 (see --help)" 2 ;;
    esac
    shift
done

# --- is this a system we support? One line why, and what to do. ---
[ "$(id -u)" -eq 0 ] || die "must run as root (it installs packages and a system service): sudo bash $0 $*" 77
command -v dpkg >/dev/null 2>&1 || die "needs Debian or Raspberry Pi OS (dpkg/apt not found)" 69
arch="$(dpkg --print-architecture)"
case "$arch" in
    arm64 | amd64) ;;
    armhf | armel | i386)
        die "this is a 32-bit OS ($arch): numpy, scipy, soxr and the TFLite runtime have no 32-bit builds; flash the 64-bit Raspberry Pi OS (Bookworm or later) and run this again" 69
        ;;
    *) die "unsupported architecture $arch: genre-pi runs on arm64 (64-bit Raspberry Pi OS) and amd64" 69 ;;
esac
case "$PREFIX" in
    /home/* | /root/* | /run/user/*) die "prefix $PREFIX is hidden from the service (ProtectHome=yes): use /opt/genre-pi" 2 ;;
    /*) ;;
    *) die "GENRE_PI_PREFIX must be an absolute path, not $PREFIX" 2 ;;
esac

check_python() {
    local version
    version="$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])' 2>/dev/null)" ||
        die "$PYTHON does not run: install python3 (3.11 or newer)" 69
    "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
        die "Python $version is too old: genre-pi needs Python 3.11 or newer (Raspberry Pi OS / Debian Bookworm or later); upgrade the OS and run this again" 69
    "$PYTHON" -c 'import struct, sys; sys.exit(struct.calcsize("P") != 8)' ||
        die "Python $version is a 32-bit build: install the 64-bit OS and run this again" 69
}

systemd_running() {
    # In a chroot or container PID 1 is something else, or systemctl answers "offline".
    [ -z "$ROOT" ] || return 1
    [ "$(cat /proc/1/comm 2>/dev/null)" = systemd ] || return 1
    case "$(systemctl is-system-running 2>/dev/null || true)" in
        running | degraded | starting | initializing | maintenance) return 0 ;;
        *) return 1 ;;
    esac
}

changed=0

# --- remove ---
if [ "$mode" = uninstall ] || [ "$mode" = purge ]; then
    if systemd_running && [ -e "$UNIT" ]; then
        systemctl disable --now "$UNIT_NAME" >/dev/null 2>&1 || true
        say "service stopped and disabled"
    fi
    rm -f "$ROOT/etc/systemd/system/multi-user.target.wants/$UNIT_NAME"
    if [ -e "$UNIT" ]; then
        rm -f "$UNIT"
        say "removed $UNIT"
    fi
    if systemd_running; then
        systemctl daemon-reload
        systemctl reset-failed "$UNIT_NAME" >/dev/null 2>&1 || true
    fi
    if [ -e "$VENV" ]; then
        rm -rf "$VENV"
        say "removed $VENV"
    fi
    # The prefix may be the clone itself (/opt/genre-pi): remove it only if nothing else is in it.
    [ -d "$ROOT$PREFIX" ] && rmdir "$ROOT$PREFIX" 2>/dev/null && say "removed $ROOT$PREFIX"
    if [ "$mode" = purge ]; then
        rm -f "$CONFIG" "$PASSWORD" "$ETC"/.config.*.toml
        if [ -d "$ETC" ]; then
            rmdir "$ETC" 2>/dev/null && say "removed $ETC (config and password)" ||
                say "kept $ETC: it holds files this script did not write"
        fi
    elif [ -d "$ETC" ]; then
        say "kept $CONFIG and $PASSWORD (--purge removes them)"
    fi
    say "the apt packages stay installed (${APT_PACKAGES[*]})"
    exit 0
fi

# --- install / upgrade ---
if command -v "$PYTHON" >/dev/null 2>&1; then
    check_python # before apt, so an old OS is refused before anything is installed
fi
bash "$SRC/scripts/apt-install.sh" "${APT_PACKAGES[@]}"
check_python

if [ -n "$password_file" ] && [ ! -r "$password_file" ]; then
    die "--password-file $password_file: no such readable file" 2
fi

# The package is built from a clean copy, so the clone gets no build/ or *.egg-info of ours.
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
tar -C "$SRC" --exclude=__pycache__ --exclude='*.pyc' --exclude='*.egg-info' \
    -cf - pyproject.toml README.md edge daemon trainer | tar -C "$stage" -xf -
source_hash="$(cd "$stage" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-64)"

export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PIP_ROOT_USER_ACTION=ignore
if [ ! -x "$VENV/bin/python" ]; then
    mkdir -p "$ROOT$PREFIX"
    "$PYTHON" -m venv "$VENV"
    say "created $VENV"
fi
if [ ! -x "$VENV/bin/genre-daemon" ] || [ ! -f "$STAMP" ]; then
    say "installing genre-pi[edge] into $VENV (a few minutes: pyaudio is compiled)"
    "$VENV/bin/python" -m pip install -q "$stage[edge]"
    echo "$source_hash" >"$STAMP"
    changed=1
elif [ "$mode" = upgrade ]; then
    say "upgrading genre-pi in $VENV from $SRC"
    "$VENV/bin/python" -m pip install -q --force-reinstall --no-deps "$stage"
    "$VENV/bin/python" -m pip install -q "$stage[edge]" # new or changed dependencies
    [ "$(cat "$STAMP")" = "$source_hash" ] || changed=1
    echo "$source_hash" >"$STAMP"
elif [ "$(cat "$STAMP")" != "$source_hash" ]; then
    say "the installed code differs from $SRC: run with --upgrade to install this version"
else
    say "genre-pi is installed in $VENV and matches $SRC"
fi

# Configuration: the example with the flags' values; an existing file keeps everything else.
install -d -m 755 "$ETC"
result="$("$PYTHON" "$SRC/scripts/pi/set_config.py" "$SRC/systemd/config.example.toml" "$CONFIG" \
    ${config_args[@]+"${config_args[@]}"})" || die "could not write $CONFIG" 78
[ "$result" = unchanged ] || changed=1
say "config $CONFIG: $result"

# The broker password: root-only; systemd hands it to the service (LoadCredential=), which must find the file.
old_umask="$(umask)"
umask 077
if [ -n "$password_file" ]; then
    if ! cmp -s "$password_file" "$PASSWORD"; then
        install -m 600 "$password_file" "$PASSWORD"
        changed=1
        say "password stored in $PASSWORD"
    fi
elif [ -n "$username" ] && [ -t 0 ]; then
    read -r -s -p "MQTT password for $username (empty: none): " pw </dev/tty
    echo
    if [ "$pw" != "$(cat "$PASSWORD" 2>/dev/null)" ]; then
        printf '%s' "$pw" >"$PASSWORD.new" && mv -f "$PASSWORD.new" "$PASSWORD"
        changed=1
        say "password stored in $PASSWORD"
    fi
    unset pw
elif [ ! -e "$PASSWORD" ]; then
    : >"$PASSWORD"
    [ -z "$username" ] ||
        say "no terminal to ask for the password: give --password-file F (the broker password file is empty)"
fi
chmod 600 "$PASSWORD"
chown 0:0 "$PASSWORD"
umask "$old_umask"

# The unit, with this install's paths if they are not the defaults.
unit_tmp="$stage/$UNIT_NAME"
sed -e "s#/opt/genre-pi/\.venv#$VENV#g" -e "s#/etc/genre-daemon/#$ETC/#g" \
    "$SRC/systemd/$UNIT_NAME" >"$unit_tmp"
if ! cmp -s "$unit_tmp" "$UNIT"; then
    install -D -m 644 "$unit_tmp" "$UNIT"
    changed=1
    say "installed $UNIT"
fi

# The daemon's own check, reading the password the way the service will ($CREDENTIALS_DIRECTORY).
if ! CREDENTIALS_DIRECTORY="$ETC" "$VENV/bin/genre-daemon" --config "$CONFIG" --check-config; then
    die "the configuration does not pass genre-daemon --check-config: fix $CONFIG and run this again" 78
fi

if ! systemd_running; then
    say "systemd is not running here (a chroot or container?): installed, not started."
    say "on the device: systemctl daemon-reload && systemctl enable --now $UNIT_NAME"
elif [ "$no_start" -eq 1 ]; then
    systemctl daemon-reload
    say "not started (--no-start): systemctl enable --now $UNIT_NAME"
else
    systemctl daemon-reload
    was_active=0
    systemctl is-active --quiet "$UNIT_NAME" && was_active=1
    systemctl enable --now "$UNIT_NAME" >/dev/null 2>&1 || systemctl enable --now "$UNIT_NAME"
    if [ "$was_active" -eq 1 ] && [ "$changed" -eq 1 ]; then
        systemctl restart "$UNIT_NAME"
        say "service restarted with the changes"
    fi
    systemctl is-active --quiet "$UNIT_NAME" ||
        die "the service did not stay up: journalctl -u $UNIT_NAME -n 50" 1
    say "service running: journalctl -u $UNIT_NAME -f"
fi
say "pick the microphone with: $VENV/bin/genre-daemon --list-devices   then --mic NAME"
