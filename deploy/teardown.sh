#!/usr/bin/env bash
# Delete a facefleet stack and everything it made, in an order that works:
#
#   1. stop the scaler: reserved concurrency 0 throttles every invocation, the
#      scheduled one and the alarm's alike, then wait out an invocation already
#      running (the function's timeout), so nothing launches after step 2;
#   2. terminate the app-tier instances (the scaler made them, not CloudFormation,
#      and they hold AppSecurityGroup and AppInstanceProfile) and wait for them;
#   3. empty the input, output and (when the stack created it) artefacts buckets,
#      every object version included: CloudFormation cannot delete a bucket that
#      holds anything. A bucket passed as ArtifactsBucketName is left alone;
#   4. delete the stack and wait for it.
#
#   deploy/teardown.sh [stack-name]      (default: facefleet)
#
# Uses the AWS CLI v2 with your credentials and region. It asks nothing: run it
# only for a stack you mean to delete, with its data.
set -euo pipefail
stack=${1:-facefleet}
# The app tier's tag key (Mappings.Tier.Tag.Key in template.yaml).
tag_key=facefleet-app
log() { echo "teardown: $*" >&2; }

# physical STACK-LOGICAL-ID: the resource's physical id, empty when the stack has
# no such resource (a resource behind a false condition).
physical() {
	aws cloudformation describe-stack-resource --stack-name "$stack" --logical-resource-id "$1" \
		--query StackResourceDetail.PhysicalResourceId --output text 2>/dev/null || true
}

aws cloudformation describe-stacks --stack-name "$stack" --query 'Stacks[0].StackStatus' --output text >/dev/null ||
	{ log "no stack $stack in this account and region"; exit 1; }

fn=$(physical ScalerFunction)
if [ -n "$fn" ] && [ "$fn" != None ]; then
	log "stopping the scaler $fn (reserved concurrency 0)"
	aws lambda put-function-concurrency --function-name "$fn" --reserved-concurrent-executions 0 >/dev/null
	timeout=$(aws lambda get-function-configuration --function-name "$fn" --query Timeout --output text)
	log "waiting ${timeout}s for an invocation already running to end"
	sleep "$timeout"
fi

read -r -a ids <<<"$(aws ec2 describe-instances \
	--filters "Name=tag:$tag_key,Values=$stack" "Name=instance-state-name,Values=pending,running,stopping,stopped" \
	--query 'Reservations[].Instances[].InstanceId' --output text)"
if [ "${#ids[@]}" -gt 0 ] && [ "${ids[0]}" != None ]; then
	log "terminating ${#ids[@]} app-tier instances: ${ids[*]}"
	aws ec2 terminate-instances --instance-ids "${ids[@]}" >/dev/null
	aws ec2 wait instance-terminated --instance-ids "${ids[@]}"
fi

# A JMESPath query (backquotes are its literals, not the shell's).
# shellcheck disable=SC2016
versions='{Objects: [Versions[].{Key: Key, VersionId: VersionId}, DeleteMarkers[].{Key: Key, VersionId: VersionId}][], Quiet: `true`}'
for logical in InputBucket OutputBucket ArtifactsBucket; do
	bucket=$(physical "$logical")
	if [ -z "$bucket" ] || [ "$bucket" = None ]; then
		continue
	fi
	log "emptying s3://$bucket"
	aws s3 rm --recursive --only-show-errors "s3://$bucket"
	# Versioned buckets keep old versions and delete markers: remove them too,
	# 500 at a time (at most 2000 rounds, a million versions, so it cannot spin).
	for ((round = 1; ; round++)); do
		batch=$(aws s3api list-object-versions --bucket "$bucket" --max-items 500 --output json --query "$versions")
		case "$batch" in *'"Key"'*) ;; *) break ;; esac
		if [ "$round" -gt 2000 ]; then
			log "s3://$bucket still holds versions after 2000 rounds of deletes; empty it in the console, then rerun"
			exit 1
		fi
		aws s3api delete-objects --bucket "$bucket" --delete "$batch" >/dev/null
	done
done

log "deleting stack $stack"
aws cloudformation delete-stack --stack-name "$stack"
aws cloudformation wait stack-delete-complete --stack-name "$stack"
log "stack $stack deleted"
