#!/usr/bin/env bash
# Checks dashboards/ against a real Prometheus scraping a real syncer (see dashboards/README.md, "The check").
# Installs Debian's prometheus package if prometheus/promtool are missing (CI: a fresh Debian, run as root).
set -euo pipefail
cd "$(dirname "$0")/../.."

if ! command -v prometheus >/dev/null 2>&1 || ! command -v promtool >/dev/null 2>&1; then
  echo "== installing prometheus (Debian prometheus)"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null
fi

echo "== building the syncer"
cargo build -p syncer --bin syncer --quiet
target_dir=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')

echo "== dashboards check (Prometheus $(prometheus --version 2>&1 | head -1 | awk '{print $3}'))"
# The check stops its children itself; `timeout` bounds it should it hang (SIGTERM runs its clean-up).
timeout -k 10 180 python3 dashboards/check/check.py --syncer "$target_dir/debug/syncer" "$@"
