#!/usr/bin/env bash
# Prepare the services the test suite uses and print their settings as KEY=VALUE lines.
# As root on Debian it installs what is missing (PostgreSQL, Chromium); elsewhere the tests that
# need a missing service say so and skip.
set -uo pipefail
cd "$(dirname "$0")/.."
log() { echo "test-services: $*" >&2; }

need_apt=()
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium chromium-driver)
[ -d /usr/share/fonts/truetype/wqy ] || need_apt+=(fonts-wqy-zenhei)
[ -x /usr/lib/postgresql/15/bin/pg_ctl ] || ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || need_apt+=(postgresql)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    log "installing ${need_apt[*]}"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}") >&2 \
      || log "apt-get failed; the tests that need ${need_apt[*]} will skip"
  else
    log "not root: ${need_apt[*]} missing; their tests will skip"
  fi
fi

if [ -f scripts/start_postgres.sh ]; then
  url=$(bash scripts/start_postgres.sh 2>/dev/null | tail -n 1)
  if [[ "$url" == postgresql* ]]; then
    echo "GUOMEN_TEST_POSTGRES_URL=$url"
  else
    log "PostgreSQL did not start; postgres tests will skip"
  fi
fi
