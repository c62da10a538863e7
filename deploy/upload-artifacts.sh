#!/usr/bin/env bash
# Upload the artefacts the EC2 tiers install at boot (worker binary, models, ONNX
# Runtime library; built by `make dist` and/or `make build-arm64` into build/dist)
# to the stack's ArtifactsLocation output.
#
# The binaries go last: an instance's facefleet-sync waits for the binary and
# then fetches the library and models, so everything else must already be there
# when it appears. Instances waiting for it pick it up within 15 s; a running
# web tier picks up a new upload on `systemctl restart facefleet-web` (through
# Session Manager), and pooled workers at their next start.
#
#   deploy/upload-artifacts.sh [stack-name]      (default: facefleet)
set -euo pipefail
stack=${1:-facefleet}
dist=${DIST:-build/dist}
[ -d "$dist/bin" ] || { echo "upload-artifacts: $dist/bin is missing: run make dist (x86_64) or make build-arm64" >&2; exit 1; }
bins=("$dist"/bin/*)
[ -e "${bins[0]}" ] || { echo "upload-artifacts: $dist/bin is empty: run make dist (x86_64) or make build-arm64" >&2; exit 1; }
loc=$(aws cloudformation describe-stacks --stack-name "$stack" \
	--query "Stacks[0].Outputs[?OutputKey=='ArtifactsLocation'].OutputValue" --output text)
case "$loc" in
s3://*/) ;;
*) echo "upload-artifacts: stack $stack has no ArtifactsLocation output (got '$loc')" >&2; exit 1 ;;
esac
echo "upload-artifacts: $dist -> $loc (binaries last)"
aws s3 sync --only-show-errors --exclude 'bin/*' "$dist/" "$loc"
for b in "${bins[@]}"; do
	aws s3 cp --only-show-errors "$b" "${loc}bin/$(basename "$b")"
done
aws s3 ls --recursive "$loc"
