#!/usr/bin/env bash
# Builds librdkafka's own integration test runner (tests/test-runner) from the librdkafka sources
# that the rdkafka-sys crate vendors (found through `cargo metadata`, so the version is the one
# Cargo.lock pins), in a cache outside the clone:
#
#   ~/.cache/sluice-librdkafka/<librdkafka version>-<recipe>/
#
# Prints that directory as its last line of output. A no-op (well under a second) when the cache
# is already built. A cold build takes about 5 minutes on 2 cores; it runs under `nice -n 19`
# with at most 2 jobs. Installs the Debian packages the build wants when they are missing.
#
# Environment: SLUICE_LIBRDKAFKA_CACHE overrides ~/.cache/sluice-librdkafka.
set -euo pipefail

# Bump when the recipe below changes (configure flags, packages, patches): a new cache dir.
RECIPE=b2

COMPAT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
REPO_DIR="$(cd "$COMPAT_DIR/.." && pwd)"
log() { echo "librdkafka-build: $*" >&2; }

# --- where rdkafka-sys keeps librdkafka
manifest="$(cd "$REPO_DIR" && cargo metadata --format-version 1 2>/dev/null | python3 -c '
import json, sys
d = json.load(sys.stdin)
ps = [p for p in d["packages"] if p["name"] == "rdkafka-sys"]
if len(ps) != 1:
    sys.exit("expected exactly one rdkafka-sys package, found %d" % len(ps))
print(ps[0]["version"], ps[0]["manifest_path"])
')" || { log "ERROR: cargo metadata did not give the rdkafka-sys package"; exit 1; }
sys_version="${manifest%% *}"            # e.g. 4.10.0+2.12.1
version="${sys_version##*+}"             # librdkafka's version, e.g. 2.12.1
src="$(dirname "${manifest#* }")/librdkafka"
[[ -d "$src/tests" && -x "$src/configure" ]] || { log "ERROR: $src has no tests/ or configure"; exit 1; }

cache_root="${SLUICE_LIBRDKAFKA_CACHE:-$HOME/.cache/sluice-librdkafka}"
dir="$cache_root/$version-$RECIPE"
if [[ -f "$dir/.built" && -x "$dir/tests/test-runner" ]]; then
  echo "$dir"
  exit 0
fi

# --- build dependencies (Debian). rapidjson-dev: 0053 validates the statistics JSON against its
# schema only when the runner is built with RapidJSON; libzstd-dev: zstd compression (0017).
need=()
for tool in cc c++ make perl python3; do command -v "$tool" >/dev/null 2>&1 || need+=(build-essential perl python3); done
for pkg in rapidjson-dev libzstd-dev zlib1g-dev libssl-dev; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || need+=("$pkg")
done
if ((${#need[@]})); then
  log "installing Debian packages: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq "${need[@]}" >/dev/null
fi

log "building librdkafka $version (from $src) in $dir; a cold build takes ~5 min"
rm -rf "$dir"
mkdir -p "$cache_root"
# Builds that were killed leave their temp dirs; one older than two hours is not running.
find "$cache_root" -maxdepth 1 -name '.build.*' -mmin +120 -exec rm -rf {} +
tmp="$(mktemp -d "$cache_root/.build.XXXXXX")"
trap '[[ -n "${SLUICE_LIBRDKAFKA_KEEP_FAILED:-}" ]] || rm -rf "$tmp"' EXIT
cp -a "$src/." "$tmp/"
chmod -R u+w "$tmp"
(
  cd "$tmp"
  # The logs are *.out: mklove loads every ./configure.* file as a module.
  # No GSSAPI (Kerberos), no libcurl (OIDC): Sluice has neither, and the tests that need them are
  # excluded. SSL stays on so the SSL tests compile (they are excluded at run time).
  nice -n 19 ./configure --disable-gssapi --disable-curl >build-configure.out 2>&1 ||
    { tail -n 40 build-configure.out >&2; exit 1; }
  nice -n 19 make -j2 libs >build-libs.out 2>&1 || { tail -n 40 build-libs.out >&2; exit 1; }
  nice -n 19 make -j2 -C tests test-runner >build-tests.out 2>&1 || { tail -n 40 build-tests.out >&2; exit 1; }
)
[[ -x "$tmp/tests/test-runner" ]] || { log "ERROR: no tests/test-runner after the build"; exit 1; }
touch "$tmp/.built"
mv "$tmp" "$dir"
trap - EXIT
log "built $dir/tests/test-runner"
echo "$dir"
