#!/usr/bin/env bash
# Fetches everything the build and tests need from the npm registry (never from
# anywhere else): ONNX Runtime's shared library, face-api's weights and reference
# code, Node 22 and fauxqs. Packages are pinned with integrity hashes in
# tools/node/package-lock.json, installed without running install scripts, and the
# npm cache (~/.npm) keeps the downloads between runs.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD:-$root/build}
cd "$root/tools/node"

stamp=node_modules/.facefleet-lock
if [ ! -f "$stamp" ] || ! cmp -s package-lock.json "$stamp"; then
  echo "deps: installing npm packages (tools/node/package-lock.json)" >&2
  npm ci --ignore-scripts --no-audit --no-fund --loglevel=error
  cp package-lock.json "$stamp"
fi

# libjpeg-turbo (Debian's libturbojpeg0) makes JPEG decoding ~4x faster than Go's
# image/jpeg; the engine loads it at run time and falls back to image/jpeg without it.
if ! ldconfig -p 2>/dev/null | grep -q 'libturbojpeg.so.0 '; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "deps: installing libturbojpeg0 and libjpeg-turbo-progs (apt)" >&2
    apt-get install -y -q libturbojpeg0 libjpeg-turbo-progs >/dev/null 2>&1 ||
      { apt-get update -q >/dev/null && apt-get install -y -q libturbojpeg0 libjpeg-turbo-progs >/dev/null; } ||
      echo "deps: could not install libturbojpeg0; JPEGs will be decoded by Go's image/jpeg (slower)" >&2
  else
    echo "deps: libturbojpeg0 is not installed (apt-get install libturbojpeg0); JPEGs will be decoded by Go's image/jpeg (slower)" >&2
  fi
fi

# Debian's shellcheck and systemd-analyze (package systemd) check the boot scripts and
# units template.yaml carries, and deploy/*.sh (test/template); without them those
# tests skip, or fail under FACEFLEET_REQUIRE_DEPS=1 (make test). Debian's chromium
# drives the page's browser tests (test/ui, make test-ui) the same way.
missing=()
command -v shellcheck >/dev/null || missing+=(shellcheck)
command -v systemd-analyze >/dev/null || missing+=(systemd)
command -v chromium >/dev/null || missing+=(chromium)
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "deps: installing ${missing[*]} (apt)" >&2
    apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null 2>&1 ||
      { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; } ||
      echo "deps: could not install ${missing[*]}; the tests that need them (test/template, test/ui) will fail under make test" >&2
  else
    echo "deps: ${missing[*]} not installed (apt-get install ${missing[*]}); make test needs them" >&2
  fi
fi

case "$(uname -m)" in
  x86_64) ortarch=x64 ;;
  aarch64|arm64) ortarch=arm64 ;;
  *) echo "deps: unsupported CPU $(uname -m)" >&2; exit 1 ;;
esac
mkdir -p "$build/lib"
src=node_modules/onnxruntime-node/bin/napi-v6/linux/$ortarch/libonnxruntime.so.1
if ! cmp -s "$src" "$build/lib/libonnxruntime.so.1" 2>/dev/null; then
  cp "$src" "$build/lib/libonnxruntime.so.1.tmp"
  mv "$build/lib/libonnxruntime.so.1.tmp" "$build/lib/libonnxruntime.so.1"
fi
(cd "$root" && sha256sum -c --quiet scripts/deps.sha256)
