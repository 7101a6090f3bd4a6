#!/usr/bin/env bash
# System packages the local engines and tests need beyond Python wheels:
#   fonts-wqy-microhei  a CJK font to draw the synthetic ID cards and licences the OCR tests read
#   chromium, chromium-driver  the headless browser the end-to-end tests drive the H5 client with
# Installs only what is missing, and only where apt-get can run as root; otherwise it says what to
# install and leaves it to the tests to skip with that reason.
set -euo pipefail

need=()
fc_has_wqy() { ls /usr/share/fonts/truetype/wqy/wqy-microhei.ttc >/dev/null 2>&1; }
fc_has_wqy || need+=(fonts-wqy-microhei)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
command -v chromedriver >/dev/null 2>&1 || need+=(chromium-driver)

if [ ${#need[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "system-deps: missing ${need[*]} (install them with apt-get as root); dependent tests will skip" >&2
  exit 0
fi
echo "system-deps: installing ${need[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
