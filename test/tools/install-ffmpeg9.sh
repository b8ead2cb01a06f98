#!/usr/bin/env bash
# Installs a recent static ffmpeg (the one the PyPI package imageio-ffmpeg
# ships: libx265, libsvtav1, libopus, openssl) into a virtualenv of its own and
# links it as ${TTEOK_TOOLS_CACHE:-~/.cache/tteok}/bin/ffmpeg9. The codec tests
# (test/codecs*.test.ts) publish with it: Debian's ffmpeg 5.1 cannot send HEVC,
# AV1 or Opus over Enhanced RTMP. Rebuilt only when the pin or the Python
# interpreter changes, so a second run is a no-op.
#
#   TTEOK_TOOLS_CACHE  where tools are kept (default ~/.cache/tteok)
set -euo pipefail
version=0.8.1
cache="${TTEOK_TOOLS_CACHE:-$HOME/.cache/tteok}"
venv="$cache/imageio-ffmpeg"
python="$(command -v python3)"
stamp="imageio-ffmpeg==$version $("$python" -c 'import sys; print(sys.version.split()[0])')"
mkdir -p "$cache/bin"

if [[ -f "$venv/tteok.stamp" && "$(cat "$venv/tteok.stamp")" == "$stamp" ]]; then
  echo "install-ffmpeg9: imageio-ffmpeg is cached ($stamp)"
else
  echo "install-ffmpeg9: creating $venv with imageio-ffmpeg==$version"
  rm -rf "$venv"
  "$python" -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "imageio-ffmpeg==$version"
  echo "$stamp" > "$venv/tteok.stamp"
fi
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
