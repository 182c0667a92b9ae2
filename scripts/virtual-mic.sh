#!/usr/bin/env bash
# A virtual microphone for machines without a sound card (CI, containers, laptops): a
# private PulseAudio daemon with one null sink; what is played into the sink comes out of
# its monitor, the daemon's default source, which ALSA's `pulse` device (and so
# recorder.microphone with device = "pulse") captures. Needs pulseaudio, pulseaudio-utils
# and libasound2-plugins. Nothing outside $dir is touched.
#
#   eval "$(scripts/virtual-mic.sh start 48000)"   # sets PULSE_SERVER for this shell
#   acoupi devices                                 # lists `pulse`
#   pacat -d acoupi_mic --raw --format=s16le --channels=1 --rate=48000 < audio.raw
#   scripts/virtual-mic.sh stop
set -euo pipefail
dir="${ACOUPI_VMIC_DIR:-${TMPDIR:-/tmp}/acoupi-vmic}"
case "${1:-}" in
start)
    rate="${2:-48000}"
    "$0" stop >/dev/null 2>&1 || true
    mkdir -p "$dir"
    export HOME="$dir" XDG_RUNTIME_DIR="$dir" PULSE_RUNTIME_PATH="$dir/run" PULSE_STATE_PATH="$dir/state"
    pulseaudio -n --daemonize=no --exit-idle-time=-1 --disallow-exit --use-pid-file=no --disable-shm=yes \
        --load="module-native-protocol-unix socket=$dir/native auth-anonymous=1" \
        --load="module-null-sink sink_name=acoupi_mic rate=$rate channels=1 format=s16le" \
        --log-target=stderr </dev/null >"$dir/pulseaudio.log" 2>&1 &
    echo $! >"$dir/daemon.pid"
    export PULSE_SERVER="unix:$dir/native"
    for _ in $(seq 100); do pactl info >/dev/null 2>&1 && break; sleep 0.1; done
    pactl info >/dev/null || { cat "$dir/pulseaudio.log" >&2; exit 1; }
    # An idle null sink sends nothing to its monitor: keep silence playing into it.
    pacat --playback -d acoupi_mic --raw --format=s16le --channels=1 --rate="$rate" /dev/zero </dev/null >/dev/null 2>&1 &
    echo $! >"$dir/silence.pid"
    echo "export PULSE_SERVER=unix:$dir/native"
    ;;
stop)
    for pid in silence daemon; do
        [[ -f "$dir/$pid.pid" ]] && kill "$(cat "$dir/$pid.pid")" 2>/dev/null || true
        rm -f "$dir/$pid.pid"
    done
    ;;
*)
    echo "usage: $0 start [RATE] | stop" >&2
    exit 2
    ;;
esac
