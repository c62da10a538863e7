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
