#!/usr/bin/env bash
# Upload the artefacts the EC2 tiers install at boot (worker binary, models, ONNX
# Runtime library; built by `make dist` and/or `make build-arm64` into build/dist)
# to the stack's ArtifactsLocation output. Instances waiting in their user data
# pick them up within 15 s.
#
#   deploy/upload-artifacts.sh [stack-name]      (default: facefleet)
set -euo pipefail
stack=${1:-facefleet}
dist=${DIST:-build/dist}
[ -d "$dist/bin" ] || { echo "upload-artifacts: $dist/bin is missing: run make dist (x86_64) or make build-arm64" >&2; exit 1; }
loc=$(aws cloudformation describe-stacks --stack-name "$stack" \
	--query "Stacks[0].Outputs[?OutputKey=='ArtifactsLocation'].OutputValue" --output text)
case "$loc" in
s3://*) ;;
*) echo "upload-artifacts: stack $stack has no ArtifactsLocation output (got '$loc')" >&2; exit 1 ;;
esac
echo "upload-artifacts: $dist -> $loc"
aws s3 sync --only-show-errors "$dist/" "$loc"
aws s3 ls --recursive "$loc"
