#!/usr/bin/env bash
# Takes the dashboard's screenshots for the README into docs/img/ (or the folder given):
# the browser test (tests/e2e/browser.rs) runs a station on the bundled great tit song
# and, with ACOUPI_SCREENSHOTS set, saves one PNG per page (today, today-phone,
# detections, species, recording, station, analytics). Needs chromium and
# chromium-driver (scripts/setup.sh --ci installs them); fails without them.
#
#   scripts/screenshots.sh [DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
dir="$(realpath -m "${1:-docs/img}")"
mkdir -p "$dir"
ACOUPI_SCREENSHOTS="$dir" ACOUPI_REQUIRE_BROWSER=1 \
    cargo test --test e2e -- --exact --nocapture \
    browser::the_dashboard_works_in_a_real_browser_on_a_station_that_heard_great_tits
ls -l "$dir"/*.png
