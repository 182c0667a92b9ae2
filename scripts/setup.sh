#!/usr/bin/env bash
# Installs the Debian/Ubuntu packages a source checkout needs, only those missing, with
# sudo only when not already root (a container or CI machine often has no sudo).
#
#   scripts/setup.sh             to build and test: npm (fetches the prebuilt DuckDB and
#                                taplo), pkg-config and libasound2-dev (ALSA, for
#                                recorder.microphone), PulseAudio, pacat and the ALSA
#                                pulse plugin (a virtual microphone for the tests)
#   scripts/setup.sh --package   also what scripts/package.sh and scripts/check-package.sh
#                                need: patchelf, lintian, adduser, and for the Raspberry
#                                Pi (arm64) build the cross compiler, qemu-user, arm64
#                                multiarch with libasound2-dev:arm64 and libstdc++6:arm64,
#                                and the Rust target aarch64-unknown-linux-gnu
#   scripts/setup.sh --ci        all of --package, and the daemons the CI suite starts:
#                                mosquitto (the Home Assistant tests' broker), slurm-wlm
#                                and munge (the single-node Slurm cluster test),
#                                chromium and chromium-driver (the dashboard's browser
#                                test, tests/e2e/browser.rs)
set -euo pipefail
package=0
ci=0
case "${1:-}" in
    "") ;;
    --package) package=1 ;;
    --ci) package=1 ci=1 ;;
    *) echo "usage: scripts/setup.sh [--package | --ci]" >&2; exit 2 ;;
esac
sudo=()
[[ $(id -u) == 0 ]] || sudo=(sudo)

need=()
command -v npm >/dev/null || need+=(npm)
command -v pkg-config >/dev/null || need+=(pkg-config)
pkg-config --exists alsa 2>/dev/null || need+=(libasound2-dev)
command -v pulseaudio >/dev/null || need+=(pulseaudio)
command -v pacat >/dev/null || need+=(pulseaudio-utils)
compgen -G "/usr/lib/*/alsa-lib/libasound_module_pcm_pulse.so" >/dev/null || need+=(libasound2-plugins)
update=0
if ((ci)); then
    command -v mosquitto >/dev/null || [[ -x /usr/sbin/mosquitto ]] || need+=(mosquitto)
    command -v slurmctld >/dev/null || [[ -x /usr/sbin/slurmctld ]] || need+=(slurm-wlm)
    command -v munged >/dev/null || [[ -x /usr/sbin/munged ]] || need+=(munge)
    [[ -x /usr/bin/chromium ]] || need+=(chromium)
    [[ -x /usr/bin/chromedriver ]] || need+=(chromium-driver)
fi
if ((package)); then
    command -v patchelf >/dev/null || need+=(patchelf)
    command -v lintian >/dev/null || need+=(lintian)
    command -v adduser >/dev/null || need+=(adduser)
    command -v aarch64-linux-gnu-gcc >/dev/null || need+=(gcc-aarch64-linux-gnu)
    command -v qemu-aarch64 >/dev/null || need+=(qemu-user)
    if ! dpkg --print-foreign-architectures | grep -qx arm64; then
        "${sudo[@]}" dpkg --add-architecture arm64
        update=1
    fi
    for lib in libasound2-dev:arm64 libstdc++6:arm64; do
        dpkg-query -W -f '${Status}' "$lib" 2>/dev/null | grep -q 'install ok installed' || need+=("$lib")
    done
fi
if ((${#need[@]} || update)); then
    echo "setup: apt-get install ${need[*]}" >&2
    "${sudo[@]}" apt-get update -qq
    if ((${#need[@]})); then
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
    fi
fi
if ((package)) && command -v rustup >/dev/null \
    && ! rustup target list --installed | grep -qx aarch64-unknown-linux-gnu; then
    rustup target add aarch64-unknown-linux-gnu
fi
