#!/usr/bin/env bash
# SOP-002 "Automated health verification": run the mandatory health checks (fluo-health) and the
# smoke tests (fluo-smoke) against an environment.
#
# Usage: scripts/verify-deployment-health.sh [ENV]     (ENV default: $FLUO_ENV, else "local")
#
# Both always run, so one report shows everything. Exit code: the first non-zero of fluo-health,
# then fluo-smoke (0 all passed, 1 a check failed, 2 usage or configuration error).
# Binaries: $FLUO_HEALTH_BIN / $FLUO_SMOKE_BIN, else fluo-health / fluo-smoke on PATH (the Nix
# apps), else built from this checkout with cargo.
set -uo pipefail

if (($# > 1)) || [[ ${1:-} == -h || ${1:-} == --help ]]; then
  sed -n '2,11p' "$0" | sed 's/^# \{0,1\}//'
  exit 2
fi
env_name=${1:-${FLUO_ENV:-local}}
root=$(cd "$(dirname "$0")/.." && pwd)

# Prints the command that runs binary $1 (env override, PATH, or cargo in this checkout).
binary() {
  local name=$1 override=$2
  if [[ -n ${!override:-} ]]; then
    printf '%s\n' "${!override}"
  elif command -v "$name" >/dev/null 2>&1; then
    command -v "$name"
  else
    cargo build --quiet --manifest-path "$root/Cargo.toml" -p "$name" >&2 || return 2
    printf '%s\n' "$(cargo metadata --format-version 1 --no-deps --manifest-path "$root/Cargo.toml" |
      sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')/debug/$name"
  fi
}

health_bin=$(binary fluo-health FLUO_HEALTH_BIN) || exit 2
smoke_bin=$(binary fluo-smoke FLUO_SMOKE_BIN) || exit 2

printf '==> health checks (%s)\n' "$env_name"
"$health_bin" --env "$env_name"
health=$?

printf '\n==> smoke tests (%s)\n' "$env_name"
"$smoke_bin" --env "$env_name"
smoke=$?

if ((health != 0)); then
  printf '\nverify-deployment-health: health checks failed (exit %d)\n' "$health" >&2
  exit "$health"
fi
if ((smoke != 0)); then
  printf '\nverify-deployment-health: smoke tests failed (exit %d)\n' "$smoke" >&2
  exit "$smoke"
fi
printf '\nverify-deployment-health: %s is healthy\n' "$env_name"
