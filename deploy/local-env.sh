#!/usr/bin/env bash
# Print the --env-vars file for `sam local invoke` that points the scaler at a
# deployed stack: the deployed function's own environment, keyed by its logical
# id. (events/env.json holds well-formed example values instead: sam local
# resolves the template's Refs to logical ids, which the scaler rejects.)
#
#   deploy/local-env.sh [stack-name] > build/env.json      (default: facefleet)
#   sam local invoke ScalerFunction -e events/scheduled.json --env-vars build/env.json
#
# That invoke acts on the real fleet with your credentials: it starts and
# launches instances when the queue has a backlog, as the deployed scaler would.
set -euo pipefail
stack=${1:-facefleet}
fn=$(aws cloudformation describe-stacks --stack-name "$stack" \
	--query "Stacks[0].Outputs[?OutputKey=='ScalerFunctionName'].OutputValue" --output text)
case "$fn" in
"" | None) echo "local-env: stack $stack has no ScalerFunctionName output" >&2; exit 1 ;;
esac
aws lambda get-function-configuration --function-name "$fn" \
	--query '{ScalerFunction: Environment.Variables}' --output json
