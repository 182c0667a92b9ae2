#!/usr/bin/env bash
# Checks a package that scripts/package.sh built.
#
#   sudo scripts/check-package.sh install dist/acoupi_<version>_amd64.deb
#   scripts/check-package.sh copy dist/acoupi_<version>_<arch>.deb
#
# `install` (root, this machine's architecture, acoupi not installed yet): `dpkg -i`; as
# the user `acoupi`: `acoupi --version`, `validate` on every installed pipeline and on
# /etc/acoupi/station.toml, `run --once` on the installed demo (writing under
# /var/lib/acoupi/examples); then `dpkg --purge`, after which nothing of the package may
# be left but the data the package documents keeping (the store and the recordings under
# /var/lib/acoupi) and the user; then the `copy` checks.
# `copy` (any user, any architecture: a foreign one runs under qemu-aarch64): the
# package's tree is unpacked and moved to another folder, where the binary must find its
# library and its models (`acoupi models` lists the moved paths), `--version`,
# `validate` on every pipeline, `run --once` on the demo (writing into the moved folder)
# and `acoupi models --verify` (the models' reference cases) must pass.
# ACOUPI_CHECK_WITHOUT_MODELS=1 leaves out the `acoupi models` checks (for a binary older
# than that command); CI never sets it.
set -euo pipefail
cd "$(dirname "$0")/.."
mode="${1:-}"
if [[ ! ( "$mode" == install || "$mode" == copy ) || ! -f "${2:-}" ]]; then
    echo "usage: scripts/check-package.sh install|copy DEB" >&2
    exit 2
fi
deb="$(realpath "$2")"
fail() { echo "check-package: FAILED: $*" >&2; exit 1; }
say() { echo "check-package: $*" >&2; }
started=$SECONDS
arch="$(dpkg-deb -f "$deb" Architecture)"
case "$(uname -m)" in
    x86_64) host=amd64 ;;
    aarch64) host=arm64 ;;
    *) host="$(uname -m)" ;;
esac
run=()
if [[ "$arch" != "$host" ]]; then
    [[ "$arch" == arm64 ]] || fail "cannot run a $arch package on $host"
    run=(qemu-aarch64)
fi
work="$(mktemp -d)"
chmod 755 "$work"
trap 'rm -rf "$work"' EXIT

# Runs the demo of the pipelines folder $1 once, writing under $2 instead of
# /var/lib/acoupi/examples, and checks that its store holds recordings. The binary is
# "${acoupi[@]}".
run_demo() {
    local pipelines="$1" out="$2" count
    sed -e "s#/var/lib/acoupi/examples/#$out/#g" "$pipelines/demo.toml" > "$pipelines/demo-check.toml"
    "${acoupi[@]}" run "$pipelines/demo-check.toml" --once >"$work/demo.log" 2>&1 \
        || { cat "$work/demo.log" >&2; fail "run --once on the demo"; }
    count="$("${acoupi[@]}" query "$out/demo.duckdb" --format csv "select count(*) from recordings" | tail -1)"
    [[ "$count" =~ ^[1-9][0-9]*$ ]] || fail "the demo stored no recording ($count)"
    rm -f "$pipelines/demo-check.toml"
    say "run --once on the demo: $count recordings in $out/demo.duckdb"
}

copy_checks() {
    local tree="$work/unpacked" moved="$work/elsewhere/opt/acoupi"
    dpkg-deb -x "$deb" "$tree"
    mkdir -p "$(dirname "$moved")"
    mv "$tree/usr" "$moved"
    local pipeline verify_started
    local acoupi=(env -u LD_LIBRARY_PATH -u ACOUPI_DATA_DIR ${run[@]+"${run[@]}"} "$moved/bin/acoupi")
    [[ ! -e /usr/lib/acoupi/libduckdb.so ]] \
        || fail "/usr/lib/acoupi/libduckdb.so exists: the check would not show that the moved one is used"
    "${acoupi[@]}" --version >/dev/null || fail "--version (moved to $moved)"
    if [[ "$arch" == "$host" ]]; then
        local loaded
        loaded="$(ldd "$moved/bin/acoupi" | awk '$1 == "libduckdb.so" {print $3}')"
        [[ -n "$loaded" && "$(realpath "$loaded")" == "$moved/lib/acoupi/libduckdb.so" ]] \
            || { ldd "$moved/bin/acoupi" >&2; fail "the moved binary does not load the moved libduckdb.so"; }
    fi
    for pipeline in "$moved"/share/acoupi/pipelines/*.toml; do
        "${acoupi[@]}" validate "$pipeline" >/dev/null || fail "validate $pipeline"
    done
    say "validate: every pipeline of the moved tree"
    mkdir -p "$work/out"
    run_demo "$moved/share/acoupi/pipelines" "$work/out"
    if [[ "${ACOUPI_CHECK_WITHOUT_MODELS:-0}" != 1 ]]; then
        "${acoupi[@]}" models > "$work/models.txt" || fail "acoupi models"
        grep -qF "$moved/share/acoupi/models/birdnet" "$work/models.txt" \
            || { cat "$work/models.txt" >&2; fail "acoupi models does not list the moved models"; }
        verify_started=$SECONDS
        "${acoupi[@]}" models --verify || fail "acoupi models --verify"
        say "models --verify: the reference cases pass ($((SECONDS - verify_started)) s)"
    fi
    say "copy: the binary moved to $moved finds its library and models (${run[*]:-native})"
}

if [[ "$mode" == copy ]]; then
    copy_checks
    say "passed ($((SECONDS - started)) s)"
    exit 0
fi

# install
[[ $(id -u) == 0 ]] || fail "install needs root"
[[ "$arch" == "$host" ]] || fail "install needs a $host package, not $arch"
if dpkg-query -W -f '${Status}' acoupi 2>/dev/null | grep -q 'installed\|config-files'; then
    fail "acoupi is already installed here; this check installs and purges it"
fi
# What is on the system before, to compare after the purge.
snapshot() {
    find /etc /usr /lib /opt /var/lib -xdev \
        \( -path /var/lib/dpkg -o -path /var/lib/apt -o -path /var/lib/systemd -o -path /usr/local \) -prune \
        -o -print 2>/dev/null | sort
}
snapshot > "$work/before"
dpkg -i "$deb" >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log" >&2; fail "dpkg -i"; }
as_acoupi=(runuser -u acoupi -- env -C /)
id -nG acoupi | grep -qw audio || fail "the user acoupi is not in the group audio"
[[ "$(stat -c %U /var/lib/acoupi/examples)" == acoupi ]] || fail "/var/lib/acoupi/examples is not acoupi's"
"${as_acoupi[@]}" acoupi --version >/dev/null || fail "acoupi --version as acoupi"
for pipeline in /usr/share/acoupi/pipelines/*.toml /etc/acoupi/station.toml; do
    "${as_acoupi[@]}" acoupi validate "$pipeline" >/dev/null || fail "validate $pipeline"
done
say "validate: every installed pipeline and /etc/acoupi/station.toml, as acoupi"
"${as_acoupi[@]}" acoupi run /usr/share/acoupi/pipelines/demo.toml --once >"$work/demo.log" 2>&1 \
    || { cat "$work/demo.log" >&2; fail "run --once on the installed demo as acoupi"; }
count="$("${as_acoupi[@]}" acoupi query /var/lib/acoupi/examples/demo.duckdb --format csv "select count(*) from recordings" | tail -1)"
[[ "$count" =~ ^[1-9][0-9]*$ ]] || fail "the installed demo stored no recording ($count)"
[[ "$(stat -c %U /var/lib/acoupi/examples/demo.duckdb)" == acoupi ]] || fail "the demo's store is not acoupi's"
say "run --once on the installed demo as acoupi: $count recordings in /var/lib/acoupi/examples/demo.duckdb"
if command -v systemd-analyze >/dev/null; then
    systemd-analyze verify /lib/systemd/system/acoupi.service >"$work/verify.log" 2>&1 \
        || { cat "$work/verify.log" >&2; fail "systemd-analyze verify acoupi.service"; }
fi

# What the station collected stays after a purge: a store and a recording.
"${as_acoupi[@]}" cp /var/lib/acoupi/examples/demo.duckdb /var/lib/acoupi/station.duckdb
"${as_acoupi[@]}" mkdir -p /var/lib/acoupi/recordings/2026-05
"${as_acoupi[@]}" cp /usr/share/acoupi/pipelines/audio/03_song.wav /var/lib/acoupi/recordings/2026-05/kept.wav
dpkg --purge acoupi >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log" >&2; fail "dpkg --purge"; }
[[ -f /var/lib/acoupi/station.duckdb && -f /var/lib/acoupi/recordings/2026-05/kept.wav ]] \
    || fail "the purge removed the store or the recordings"
snapshot > "$work/after"
left="$(comm -13 "$work/before" "$work/after" \
    | grep -vxE '/var/lib/acoupi|/var/lib/acoupi/station\.duckdb(\.wal)?|/var/lib/acoupi/recordings(/.*)?' \
    | grep -vxE '/etc/(passwd|group|shadow|gshadow|subuid|subgid)-?' || true)"
[[ -z "$left" ]] || fail "the purge left: $left"
if dpkg-query -W -f '${Status}' acoupi 2>/dev/null | grep -qv not-installed; then
    fail "dpkg still knows acoupi"
fi
rm -rf /var/lib/acoupi
say "purge: nothing left but the store and the recordings (removed now)"
copy_checks
say "passed ($((SECONDS - started)) s)"
