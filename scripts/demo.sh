#!/usr/bin/env bash
# Demo: classify real music and watch the MQTT messages genre-daemon publishes.
#
#   scripts/demo.sh [AUDIO_FILE]
#
# Installs what is missing (Debian/Ubuntu: mosquitto, the frozen-bubble music, build deps for
# PyAudio), creates .venv in the repo with `pip install -e .[edge]`, starts a private mosquitto
# on a free 127.0.0.1 port, runs genre-daemon on the shipped model with a file source paced in
# real time (looping), and prints every message as it arrives (mosquitto_sub -v).
# Ctrl-C stops everything this script started (and nothing else).
#
# Environment (all optional):
#   SPEED=1        file pacing: 1 real time, N times faster, 0 as fast as possible (then no loop)
#   LOOP=0         play the file once and exit at its end, at any SPEED (default: loop unless SPEED=0)
#   HOP=0          seconds of audio between classifications (0 = the model's own, 1.5 s for the shipped tagger)
#   MODEL=DIR      a model bundle instead of the shipped one
#   VENV=DIR       use an existing virtualenv that has genre-pi[edge] installed instead of .venv
#   NO_APT=1       never call apt-get (just fail if something is missing)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DEFAULT_MUSIC=/usr/share/games/frozen-bubble/snd/frozen-mainzik-1p.ogg
MUSIC="${1:-$DEFAULT_MUSIC}"
SPEED="${SPEED:-1}"
HOP="${HOP:-0}"
VENV="${VENV:-$REPO/.venv}"

say() { printf '\033[1m[demo]\033[0m %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

# --- 1. system packages -----------------------------------------------------------------
need_pkgs=()
command -v mosquitto >/dev/null || [[ -x /usr/sbin/mosquitto ]] || need_pkgs+=(mosquitto)
command -v mosquitto_sub >/dev/null || need_pkgs+=(mosquitto-clients)
[[ "$MUSIC" != "$DEFAULT_MUSIC" || -f "$DEFAULT_MUSIC" ]] || need_pkgs+=(frozen-bubble-data)
if [[ ! -x "$VENV/bin/genre-daemon" ]]; then
    python3 -c 'import ensurepip, venv' 2>/dev/null || need_pkgs+=(python3-venv)
    # PyAudio has no Linux wheels: it compiles against PortAudio.
    [[ -f /usr/include/portaudio.h ]] || need_pkgs+=(portaudio19-dev)
    command -v gcc >/dev/null || need_pkgs+=(build-essential)
    python3 -c 'import sysconfig, os, sys; sys.exit(not os.path.exists(os.path.join(sysconfig.get_paths()["include"], "Python.h")))' \
        || need_pkgs+=(python3-dev)
    ldconfig -p 2>/dev/null | grep -q libsndfile.so || need_pkgs+=(libsndfile1)
fi
if ((${#need_pkgs[@]})); then
    [[ "${NO_APT:-0}" == 1 ]] && die "missing packages: ${need_pkgs[*]} (NO_APT=1)"
    SUDO=""; [[ $(id -u) -eq 0 ]] || SUDO="sudo"
    say "installing ${need_pkgs[*]}"
    $SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${need_pkgs[@]}"
fi
MOSQUITTO="$(command -v mosquitto || echo /usr/sbin/mosquitto)"
[[ -f "$MUSIC" ]] || die "no such audio file: $MUSIC"

# --- 2. python environment --------------------------------------------------------------
if [[ ! -x "$VENV/bin/genre-daemon" ]]; then
    say "creating $VENV and installing genre-pi[edge]"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --upgrade pip
    "$VENV/bin/pip" install -q -e "$REPO[edge]"
fi
DAEMON="$VENV/bin/genre-daemon"

# --- 3. private broker on a free loopback port ------------------------------------------
WORK="$(mktemp -d -t genre-demo.XXXXXX)"
chmod 755 "$WORK"
PIDS=()
STOPPED=0
cleanup() {
    trap - INT TERM EXIT
    STOPPED=1
    # Daemon first (it publishes "offline"), then the subscriber and broker; only our own PIDs.
    for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
        kill -TERM "${PIDS[i]}" 2>/dev/null || true
        for _ in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20; do
            kill -0 "${PIDS[i]}" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "${PIDS[i]}" 2>/dev/null || true
    done
    rm -rf "$WORK"
    say "stopped"
}
trap cleanup INT TERM EXIT

PORT="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
cat >"$WORK/mosquitto.conf" <<EOF
listener $PORT 127.0.0.1
allow_anonymous true
persistence false
log_dest stderr
EOF
chmod 644 "$WORK/mosquitto.conf"
# setsid: a Ctrl-C reaches only this script, which then stops the children in order.
setsid "$MOSQUITTO" -c "$WORK/mosquitto.conf" 2>"$WORK/mosquitto.log" &
PIDS+=($!)
for _ in $(seq 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null && break
    kill -0 "${PIDS[0]}" 2>/dev/null || die "mosquitto did not start: $(cat "$WORK/mosquitto.log")"
    sleep 0.05
done
say "mosquitto listening on 127.0.0.1:$PORT"

# --- 4. subscriber, then the daemon -----------------------------------------------------
setsid mosquitto_sub -h 127.0.0.1 -p "$PORT" -v -t 'genre/#' -t 'homeassistant/#' &
PIDS+=($!)
sleep 0.2

loop=(--loop)
[[ "$SPEED" == 0 || "${LOOP:-1}" == 0 ]] && loop=()
model=()
[[ -n "${MODEL:-}" ]] && model=(--model "$MODEL")
if [[ "$HOP" == 0 ]]; then hop_text="the model's own"; else hop_text="$HOP s"; fi
say "genre-daemon on $MUSIC (speed $SPEED, hop $hop_text); Ctrl-C to stop"
setsid "$DAEMON" --source "file:$MUSIC" --speed "$SPEED" "${loop[@]}" --hop "$HOP" "${model[@]}" \
    --mqtt-host 127.0.0.1 --mqtt-port "$PORT" --device-id demo &
PIDS+=($!)
rc=0
wait "${PIDS[2]}" || rc=$?
((STOPPED)) || say "genre-daemon exited with $rc"
