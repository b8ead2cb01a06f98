#!/usr/bin/env bash
# Installs a recent static ffmpeg (the one the PyPI package imageio-ffmpeg
# ships: libx265, libsvtav1, libopus, openssl) into a virtualenv of its own and
# links it as ${TTEOK_TOOLS_CACHE:-~/.cache/tteok}/bin/ffmpeg9. The codec tests
# (test/codecs*.test.ts) publish with it: Debian's ffmpeg 5.1 cannot send HEVC,
# AV1 or Opus over Enhanced RTMP. Rebuilt only when the pin or the Python
# interpreter changes (test/tools/pypi-venv.sh), so a second run is a no-op.
#
#   TTEOK_TOOLS_CACHE  where tools are kept (default ~/.cache/tteok)
set -euo pipefail
version=0.8.1
cache="${TTEOK_TOOLS_CACHE:-$HOME/.cache/tteok}"
venv="$cache/imageio-ffmpeg"
source "$(dirname "$0")/pypi-venv.sh"
mkdir -p "$cache/bin"

pypi_venv install-ffmpeg9 "$venv" "imageio-ffmpeg==$version"
binary="$("$venv/bin/python" -c 'import imageio_ffmpeg; print(imageio_ffmpeg.get_ffmpeg_exe())')"
chmod +x "$binary"
ln -sf "$binary" "$cache/bin/ffmpeg9"

# The codec tests need these; fail here, with the reason, rather than in a test.
ffmpeg9="$cache/bin/ffmpeg9"
encoders="$("$ffmpeg9" -hide_banner -encoders 2>/dev/null)"
for encoder in libx265 libsvtav1 libopus libx264 aac; do
  grep -qw "$encoder" <<<"$encoders" || { echo "install-ffmpeg9: $ffmpeg9 lacks the $encoder encoder" >&2; exit 1; }
done
"$ffmpeg9" -hide_banner -h protocol=rtmp 2>/dev/null | grep -q -- '-rtmp_enhanced_codecs' \
  || { echo "install-ffmpeg9: $ffmpeg9 cannot send Enhanced RTMP (no -rtmp_enhanced_codecs)" >&2; exit 1; }
echo "install-ffmpeg9: $("$ffmpeg9" -hide_banner -version | head -1)"
