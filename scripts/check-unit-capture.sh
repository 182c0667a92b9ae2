#!/usr/bin/env bash
# Checks that a station still captures audio under the restrictions of the unit that
# `acoupi service install` writes: a throwaway systemd (PID 1 of its own PID and mount
# namespaces, with private /tmp, /var/tmp and /run) runs the unit for a minute as the
# system user `acoupi`, recording from the virtual microphone (scripts/virtual-mic.sh,
# through ALSA's `pulse` device); then the store must hold gapless recordings and the
# process must have run with no capabilities, no new privileges and a system-call filter.
#
#   sudo scripts/check-unit-capture.sh [BINARY]      # default: target/debug/acoupi
#
# Needs root, systemd, pulseaudio, pulseaudio-utils and libasound2-plugins. It creates the
# system user `acoupi` (group `audio`) if missing, and writes only under $work (default
# /srv/acoupi-unit-check), /etc/systemd/system/acoupi-unit-check.service and
# /etc/acoupi/acoupi-unit-check.env, which it removes again.
set -euo pipefail
cd "$(dirname "$0")/.."
[[ $(id -u) == 0 ]] || { echo "check-unit-capture: needs root" >&2; exit 1; }
bin="$(realpath "${1:-target/debug/acoupi}")"
work="${ACOUPI_UNIT_CHECK_DIR:-/srv/acoupi-unit-check}"
seconds="${ACOUPI_UNIT_CHECK_SECONDS:-30}"
unit=/etc/systemd/system/acoupi-unit-check.service
envfile=/etc/acoupi/acoupi-unit-check.env

getent group audio >/dev/null || groupadd --system audio
id acoupi >/dev/null 2>&1 || useradd --system --no-create-home --groups audio acoupi
rm -rf "$work" && mkdir -p "$work/station" "$work/vmic" "$work/bin"
chmod 755 "$work" "$work/vmic"
# The binary finds libduckdb.so through its rpath ($ORIGIN/../../.duckdb): keep the layout.
mkdir -p "$work/bin/t/debug" "$work/bin/.duckdb"
cp "$bin" "$work/bin/t/debug/acoupi"
cp "$(dirname "$bin")/../../.duckdb/libduckdb.so" "$work/bin/.duckdb/"
acoupi="$work/bin/t/debug/acoupi"
sed -e "s#\.\./demo-output/#$work/station/#" -e 's/^name = "microphone"/name = "unit-check"/' \
    pipelines/microphone.toml | grep -v '^#:schema' > "$work/station/station.toml"
chown -R acoupi: "$work/station"

cleanup() {
    [[ -n "${init:-}" ]] && kill -9 "$init" 2>/dev/null || true
    ACOUPI_VMIC_DIR="$work/vmic" scripts/virtual-mic.sh stop >/dev/null 2>&1 || true
    rm -f "$unit" "$envfile"
}
trap cleanup EXIT
eval "$(ACOUPI_VMIC_DIR="$work/vmic" scripts/virtual-mic.sh start 48000)"

"$acoupi" service install "$work/station/station.toml" --user acoupi --output "$unit" --force >/dev/null
# As `service install` says next: the folders it created belong to the station's user.
chown -R acoupi: "$work/station"
mkdir -p /etc/acoupi
install -m 600 /dev/null "$envfile"
echo "PULSE_SERVER=$PULSE_SERVER" > "$envfile"

cat > "$work/init.sh" <<INIT
#!/bin/sh
mount -t tmpfs tmpfs /tmp && mount -t tmpfs tmpfs /var/tmp && mount -t tmpfs tmpfs /run
exec env container=other /lib/systemd/systemd --system --unit=acoupi-unit-check.service --log-target=console
INIT
chmod +x "$work/init.sh"
unshare --fork --pid --mount --uts --ipc --mount-proc "$work/init.sh" </dev/null >"$work/init.log" 2>&1 &
launcher=$!
sleep 2
init="$(pgrep -P "$launcher" -f 'systemd --system' || true)"
station=""
for _ in $(seq 30); do
    station="$(pgrep -u acoupi -f "$acoupi run" || true)"
    [[ -n "$station" ]] && break
    sleep 1
done
[[ -n "$station" ]] || { echo "check-unit-capture: the unit did not start the station" >&2; exit 1; }
status="$(cat "/proc/$station/status")"
sleep "$seconds"
# The station's log, from the journal inside the namespaces.
nsenter -t "$init" -m -p journalctl --no-pager -u acoupi-unit-check -n 40 >"$work/station.log" 2>&1 || true
kill -9 "$init" 2>/dev/null || true
init=""
sleep 1
grep -q '^CapEff:[[:space:]]*0*$' <<<"$status" || { echo "capabilities left: $status" >&2; exit 1; }
grep -q '^NoNewPrivs:[[:space:]]*1$' <<<"$status" || { echo "no NoNewPrivs" >&2; exit 1; }
grep -q '^Seccomp:[[:space:]]*2$' <<<"$status" || { echo "no system-call filter" >&2; exit 1; }
result="$("$acoupi" query "$work/station/microphone.duckdb" --format csv \
    "select count(*), coalesce(sum(gaps), 0) from recordings")"
read -r count gaps < <(tail -1 <<<"$result" | tr ',' ' ')
echo "check-unit-capture: $count recordings, $gaps gaps in ${seconds}s under the unit (seccomp on, no capabilities)"
(( count >= seconds / 6 && gaps == 0 )) || {
    echo "check-unit-capture: expected at least $((seconds / 6)) gapless recordings (one every 3 s); the station's log:" >&2
    cat "$work/station.log" >&2
    exit 1
}
