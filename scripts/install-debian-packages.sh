#!/usr/bin/env bash
# Install the Debian packages listed in the given files when they are missing and we can
# (root or passwordless sudo). Otherwise say what is missing and carry on: the app still gives
# MIDI and piano rolls without FluidSynth, and browser tests skip without Chromium.
set -u
missing=()
for list in "$@"; do
  [ -f "$list" ] || continue
  while read -r pkg; do
    pkg="${pkg%%#*}"; pkg="$(echo "$pkg" | xargs)"
    [ -n "$pkg" ] || continue
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
  done < "$list"
done
[ ${#missing[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null 2>&1; then
  echo "note: not a Debian/Ubuntu system; please install: ${missing[*]}" >&2; exit 0
fi
if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; else
  echo "note: cannot install ${missing[*]} without root; install them to get audio/browser tests" >&2; exit 0
fi
echo "installing Debian packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get install -y -q "${missing[@]}" >/dev/null 2>&1 || {
  $SUDO apt-get update -q >/dev/null 2>&1 && $SUDO apt-get install -y -q "${missing[@]}" >/dev/null
} || echo "note: could not install ${missing[*]}" >&2
exit 0
