#!/usr/bin/env bash
# Create the virtualenv and install the pinned requirements, plus the few system libraries Qt
# needs to draw (offscreen or on a screen) when they are missing and we may install them.
set -euo pipefail
python=${1:-python3}
venv=${2:-.venv}

need_libs=()
for lib in libEGL.so.1 libxkbcommon.so.0 libfontconfig.so.1 libGL.so.1 libdbus-1.so.3; do
  ldconfig -p 2>/dev/null | grep -q "$lib" || need_libs+=("$lib")
done
if [ ${#need_libs[@]} -gt 0 ] && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  echo "setup: installing system libraries for Qt (${need_libs[*]})"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libegl1 libxkbcommon0 libfontconfig1 \
    libgl1 libdbus-1-3 libxkbcommon-x11-0 libxcb-cursor0 fonts-dejavu-core >/dev/null
fi

# pdftotext/pdftoppm read back the PDF reports the tests write (a real reader, not our own code).
if ! command -v pdftotext >/dev/null && command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
  echo "setup: installing poppler-utils (pdftotext, pdftoppm)"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq poppler-utils >/dev/null
fi

[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
"$venv/bin/python" -m pip install -q --disable-pip-version-check -r requirements.txt
