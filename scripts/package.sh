#!/usr/bin/env bash
# Builds the Debian package of a station: dist/acoupi_<version>_<arch>.deb.
#
#   scripts/package.sh amd64|arm64
#
# arm64 is cross-built from x86-64 (.cargo/config.toml: aarch64-linux-gnu-gcc, the
# multiarch libasound2-dev:arm64, qemu-aarch64 to run it). The package holds:
#   /usr/bin/acoupi                   stripped, RUNPATH $ORIGIN/../lib/acoupi
#   /usr/lib/acoupi/libduckdb.so      DuckDB's prebuilt library for <arch>, stripped
#   /usr/share/acoupi/                models/ (with their licences), pipelines/ (the
#                                     examples, writing under /var/lib/acoupi/examples, and
#                                     their demo audio), schemas/pipeline.schema.json
#   /etc/acoupi/station.toml          a BirdNET station on a microphone (a conffile)
#   /lib/systemd/system/acoupi.service  the unit `acoupi service install` writes for it
# and maintainer scripts (packaging/) that create the system user `acoupi` (group
# `audio`) and /var/lib/acoupi. The binary finds its library through the RUNPATH and its
# models at <exe>/../share/acoupi, so the tree also works copied elsewhere.
#
# ACOUPI_PACKAGE_PROFILE=release (default) builds a release binary with
# ACOUPI_NO_SOURCE_TREE=1 (it never looks for models in the source tree).
# ACOUPI_PACKAGE_PROFILE=dev packages the debug binary instead: for the host's
# architecture the one already in target/debug as it is (e.g. what `cargo test` built;
# it is built when missing), for a cross build `cargo build --target`; CI uses this to
# skip a cold release build. The rpath the build gave the binary is replaced with
# patchelf, so packaging never rebuilds anything.
# Runs lintian on the result when it is installed (ACOUPI_PACKAGE_LINTIAN=0 skips it).
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS
arch="${1:-}"
profile="${ACOUPI_PACKAGE_PROFILE:-release}"
case "$(uname -m)" in
    x86_64 | amd64) host="amd64" ;;
    aarch64 | arm64) host="arm64" ;;
    *) host="$(uname -m)" ;;
esac
case "$arch" in
    amd64) triple="x86_64-unknown-linux-gnu"; cross_prefix="x86_64-linux-gnu-" ;;
    arm64) triple="aarch64-unknown-linux-gnu"; cross_prefix="aarch64-linux-gnu-"; qemu="qemu-aarch64" ;;
    *) echo "usage: scripts/package.sh amd64|arm64" >&2; exit 2 ;;
esac
case "$profile" in
    release) profile_dir="release"; profile_args=(--release) ;;
    dev) profile_dir="debug"; profile_args=() ;;
    *) echo "package: ACOUPI_PACKAGE_PROFILE is release or dev, not \`$profile\`" >&2; exit 2 ;;
esac
say() { echo "package[$arch]: $*" >&2; }

# The tools, and the prebuilt DuckDB for the architecture.
target_dir="${CARGO_TARGET_DIR:-target}"
if [[ "$arch" == "$host" ]]; then
    cross=0; strip="strip"; run=()
    libdir="$PWD/.duckdb"
    bin="$target_dir/$profile_dir/acoupi"
    target_args=()
else
    [[ "$host" == "amd64" && "$arch" == "arm64" ]] || {
        echo "package: cross-building $arch on $host is not set up (only amd64 -> arm64)" >&2; exit 2; }
    cross=1; strip="${cross_prefix}strip"; run=("$qemu")
    libdir="$PWD/.duckdb/$arch"
    bin="$target_dir/$triple/$profile_dir/acoupi"
    target_args=(--target "$triple")
fi
missing=()
for tool in dpkg-deb patchelf readelf gzip "$strip" ${run[@]+"${run[@]}"}; do
    command -v "$tool" >/dev/null || missing+=("$tool")
done
if ((${#missing[@]})); then
    echo "package: missing ${missing[*]} (scripts/setup.sh --package installs them)" >&2
    exit 1
fi
scripts/setup-duckdb.sh "$arch"

# The binary.
if [[ "$profile" == "dev" && "$cross" == 0 && -x "$bin" ]]; then
    say "packaging the debug binary $bin as it is"
else
    say "cargo build ${profile_args[*]-} ${target_args[*]-}"
    build_started=$SECONDS
    ACOUPI_NO_SOURCE_TREE=1 DUCKDB_LIB_DIR="$libdir" \
        cargo build --locked --bin acoupi ${profile_args[@]+"${profile_args[@]}"} \
        ${target_args[@]+"${target_args[@]}"}
    say "built $bin in $((SECONDS - build_started)) s"
fi

# The tree.
umask 022
mkdir -p dist
root="$PWD/dist/.root-$arch"
rm -rf "$root"
install -d "$root/DEBIAN" "$root/usr/bin" "$root/usr/lib/acoupi" "$root/etc/acoupi" \
    "$root/lib/systemd/system" "$root/usr/share/acoupi/pipelines" \
    "$root/usr/share/acoupi/schemas" "$root/usr/share/doc/acoupi"
install -m 0755 "$bin" "$root/usr/bin/acoupi"
"$strip" --remove-section=.comment --remove-section=.note "$root/usr/bin/acoupi"
patchelf --set-rpath '$ORIGIN/../lib/acoupi' "$root/usr/bin/acoupi"
install -m 0644 "$libdir/libduckdb.so" "$root/usr/lib/acoupi/libduckdb.so"
"$strip" --remove-section=.comment --remove-section=.note --strip-unneeded \
    "$root/usr/lib/acoupi/libduckdb.so"
acoupi=(${run[@]+"${run[@]}"} "$root/usr/bin/acoupi")

version="$("${acoupi[@]}" --version | awk '{print $2}')"
cargo_version="$(awk -F'"' '/^\[workspace.package\]/{p=1} p && /^version = /{print $2; exit}' Cargo.toml)"
[[ "$version" == "$cargo_version" ]] || {
    echo "package: the binary says version \`$version\`, Cargo.toml \`$cargo_version\`" >&2; exit 1; }

# Models (with their READMEs, licences and reference cases), the same tree as models/.
cp -R models "$root/usr/share/acoupi/models"
# The examples: their stores and folders move from ../demo-output/ (beside the source
# tree) to /var/lib/acoupi/examples/, which the package's user `acoupi` may write; models
# (../models/) and the demo audio (audio/) stay relative to the file.
for pipeline in pipelines/*.toml; do
    sed -e 's#"\.\./demo-output/#"/var/lib/acoupi/examples/#g' "$pipeline" \
        > "$root/usr/share/acoupi/$pipeline"
    if grep -n 'demo-output' "$root/usr/share/acoupi/$pipeline" >&2; then
        echo "package: $pipeline still writes under demo-output/ once installed" >&2; exit 1
    fi
done
cp -R pipelines/audio "$root/usr/share/acoupi/pipelines/audio"
"${acoupi[@]}" schema > "$root/usr/share/acoupi/schemas/pipeline.schema.json"
install -m 0644 packaging/station.toml "$root/etc/acoupi/station.toml"
# The unit is the one `acoupi service install` writes for the station, with the staging
# folder taken out of its paths.
"${acoupi[@]}" service install "$root/etc/acoupi/station.toml" --user acoupi --print \
    | sed -e "s#$root##g" > "$root/lib/systemd/system/acoupi.service"
grep -qx 'ExecStart=/usr/bin/acoupi run /etc/acoupi/station.toml' "$root/lib/systemd/system/acoupi.service" || {
    echo "package: unexpected unit:" >&2; cat "$root/lib/systemd/system/acoupi.service" >&2; exit 1; }
find "$root" -type d -exec chmod 0755 {} +
find "$root/usr/share" "$root/etc" "$root/lib" -type f -exec chmod 0644 {} +

# Documentation: the copyright file and a changelog, as Debian policy asks.
install -m 0644 packaging/copyright "$root/usr/share/doc/acoupi/copyright"
date_epoch="$(git log -1 --format=%ct 2>/dev/null || date +%s)"
{
    echo "acoupi ($version) unstable; urgency=medium"
    echo
    echo "  * acoupi-rs $version, built from $(git rev-parse --short HEAD 2>/dev/null || echo 'a source tree')."
    echo
    echo " -- ${ACOUPI_PACKAGE_MAINTAINER:-acoupi-rs maintainers <maintainers@acoupi-rs.invalid>}  $(date -R -u -d "@$date_epoch")"
} | gzip -9n > "$root/usr/share/doc/acoupi/changelog.gz"
chmod 0644 "$root/usr/share/doc/acoupi/changelog.gz"

# Depends: from what the binary and the library link (readelf NEEDED), glibc at the
# newest symbol version they use.
needed="$(readelf -d "$root/usr/bin/acoupi" "$root/usr/lib/acoupi/libduckdb.so" \
    | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p' | sort -u)"
glibc="$(readelf -V --wide "$root/usr/bin/acoupi" "$root/usr/lib/acoupi/libduckdb.so" \
    | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -1)"
depends=("libc6 (>= $glibc)")
for lib in $needed; do
    case "$lib" in
        libc.so.6 | libm.so.6 | libdl.so.2 | libpthread.so.0 | librt.so.1 | ld-linux*) ;;
        libduckdb.so) ;;
        libasound.so.2) depends+=("libasound2 (>= 1.0.16) | libasound2t64") ;;
        libstdc++.so.6) depends+=("libstdc++6") ;;
        libgcc_s.so.1) depends+=("libgcc-s1") ;;
        *) echo "package: no Debian package known for $lib (add it to scripts/package.sh)" >&2; exit 1 ;;
    esac
done
depends+=("adduser")

install -m 0755 packaging/postinst packaging/prerm packaging/postrm "$root/DEBIAN/"
echo "/etc/acoupi/station.toml" > "$root/DEBIAN/conffiles"
chmod 0644 "$root/DEBIAN/conffiles"
installed_size="$(du -sk --exclude=DEBIAN "$root" | cut -f1)"
cat > "$root/DEBIAN/control" <<CONTROL
Package: acoupi
Version: $version
Architecture: $arch
Maintainer: ${ACOUPI_PACKAGE_MAINTAINER:-acoupi-rs maintainers <maintainers@acoupi-rs.invalid>}
Installed-Size: $installed_size
Depends: $(IFS=,; echo "${depends[*]}" | sed 's/,/, /g')
Section: sound
Priority: optional
Description: autonomous bioacoustic monitoring station
 acoupi records audio on a schedule or continuously from a microphone,
 analyses it with on-device models (BirdNET, BatDetect2, a band-energy
 detector), keeps the recordings worth keeping, and sends detections and
 health messages over HTTP or MQTT. One TOML pipeline file describes a
 station; this package runs /etc/acoupi/station.toml as the systemd
 service acoupi.service, as the system user acoupi.
 .
 The bundled BirdNET and BatDetect2 weights are licensed for non-commercial
 use only (CC BY-NC-SA 4.0 and CC BY-NC 4.0).
CONTROL

deb="dist/acoupi_${version}_${arch}.deb"
# xz (dpkg's default, the smallest) for a release; gzip -1 for dev packages, about 15 %
# larger and 20 times faster (xz takes 7 min for the 190 MB tree on a busy 2-core
# machine). Not zstd: Debian 12's lintian and older dpkg reject it.
if [[ "$profile" == release ]]; then compression=(-Zxz -z6); else compression=(-Zgzip -z1); fi
dpkg-deb --root-owner-group "${compression[@]}" --build "$root" "$deb" >/dev/null
rm -rf "$root"
say "wrote $deb ($(du -h "$deb" | cut -f1), installed $((installed_size / 1024)) MiB) in $((SECONDS - started)) s"
if [[ "${ACOUPI_PACKAGE_LINTIAN:-1}" == 1 ]] && command -v lintian >/dev/null; then
    lintian_started=$SECONDS
    lintian --fail-on error "$deb" >&2
    say "lintian: no errors ($((SECONDS - lintian_started)) s)"
fi
echo "$deb"
