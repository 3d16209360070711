# pinned_venv, sourced by lib.sh (the local stack's scripts) and by
# deploy.sh, which must not take lib.sh's emulator credentials.

# pinned_venv DIR REQUIREMENTS WHAT makes DIR a Python venv holding exactly
# the pinned REQUIREMENTS, reinstalling only when they change (a stamp of
# their hash); WHAT names them in the one-time message.
pinned_venv() {
  local dir=$1 req=$2 what=$3
  local stamp="$dir/.installed-$(sha256sum "$req" | cut -c1-16)"
  if [ ! -f "$stamp" ]; then
    echo "installing $what into ${dir#"$root/"} (first run only)…" >&2
    rm -rf "$dir"
    python3 -m venv "$dir"
    "$dir/bin/pip" install --quiet --disable-pip-version-check --no-input -r "$req"
    touch "$stamp"
  fi
}
