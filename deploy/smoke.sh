#!/usr/bin/env bash
# Smoke test of a deployed facefleet stack, what to run after `sam deploy`:
# reads the stack's outputs, enrolls one photo per person, uploads N course-style
# images and checks every answer, watches the app tier grow from 0 and return
# to 0, checks the queues and their dead-letter queues end empty, and prints one
# summary line ("smoke: ... ok" or "smoke: ... FAILED"; exit status 0 or 1).
#
#   deploy/smoke.sh STACK [FACES_DIR]
#
# FACES_DIR holds one folder of photos per person (at least 2 each; default
# ../shared/datasets/faces). Needs aws (CLI v1 or v2), curl and the credentials
# of someone who may read the stack (cloudformation:DescribeStacks,
# ec2:DescribeInstances, sqs:GetQueueAttributes, sqs:GetQueueUrl).
#
# Environment (defaults in brackets):
#   SMOKE_N            uploads [20]          SMOKE_PARALLEL  concurrent uploads [10]
#   SMOKE_SCALE_WAIT   seconds for the fleet to return to 0 [900: idle timeout,
#                      the 60 s minimum lifetime and the stop itself]
#   SMOKE_POLL         seconds between fleet polls [5]
#   SMOKE_TIMEOUT      seconds one upload may take [300: the first waits for a boot]
#   SMOKE_KEY          an admin API key (required: enrolling needs one), made with
#                      facefleet keys create -role admin -output-bucket <OutputBucketName>
#   SMOKE_NEED_EC2     1: an app instance must be seen running [1]; 0 for a stack with
#                      overflow workers (OverflowReservedConcurrency > 0), whose policy
#                      may answer a small burst from Lambda alone
# Without CloudFormation (the local rig of `make e2e`), set the outputs instead:
#   SMOKE_WEB_URL, SMOKE_REQUEST_QUEUE_URL, SMOKE_RESPONSE_QUEUE_URL, and
#   SMOKE_ENDPOINT (an endpoint URL for every aws call), SMOKE_APP_TAG_KEY
#   [facefleet-app]; the app tier's instances carry SMOKE_APP_TAG_KEY=STACK.
set -euo pipefail

usage() { echo "usage: deploy/smoke.sh STACK [FACES_DIR]" >&2; exit 2; }
if [ $# -lt 1 ] || [ $# -gt 2 ]; then usage; fi
stack=$1
faces=${2:-$(dirname "$0")/../../shared/datasets/faces}
n=${SMOKE_N:-20}
parallel=${SMOKE_PARALLEL:-10}
scale_wait=${SMOKE_SCALE_WAIT:-900}
poll=${SMOKE_POLL:-5}
timeout=${SMOKE_TIMEOUT:-300}
tag_key=${SMOKE_APP_TAG_KEY:-facefleet-app}
key=${SMOKE_KEY:-}
need_ec2=${SMOKE_NEED_EC2:-1}
case "$need_ec2" in 0 | 1) ;; *) echo "smoke: SMOKE_NEED_EC2 must be 0 or 1" >&2; exit 2 ;; esac
[ -n "$key" ] || {
	echo "smoke: set SMOKE_KEY to an admin API key (enrolling needs one): facefleet keys create -role admin -output-bucket <OutputBucketName>" >&2
	exit 2
}
for v in n parallel scale_wait poll timeout; do
	case ${!v} in '' | *[!0-9]*) echo "smoke: SMOKE_${v^^}=${!v} is not a whole number" >&2; exit 2 ;; esac
done
[ -d "$faces" ] || { echo "smoke: faces folder $faces not found (one folder of photos per person)" >&2; exit 2; }
command -v aws >/dev/null || { echo "smoke: the aws CLI is not installed" >&2; exit 2; }
command -v curl >/dev/null || { echo "smoke: curl is not installed" >&2; exit 2; }

awsc() {
	if [ -n "${SMOKE_ENDPOINT:-}" ]; then
		aws --endpoint-url "$SMOKE_ENDPOINT" "$@"
	else
		aws "$@"
	fi
}

output() {
	awsc cloudformation describe-stacks --stack-name "$stack" \
		--query "Stacks[0].Outputs[?OutputKey=='$1'].OutputValue" --output text
}

web=${SMOKE_WEB_URL:-$(output WebUrl)}
req_q=${SMOKE_REQUEST_QUEUE_URL:-$(output RequestQueueUrl)}
resp_q=${SMOKE_RESPONSE_QUEUE_URL:-$(output ResponseQueueUrl)}
for v in web req_q resp_q; do
	case ${!v} in http*) ;; *) echo "smoke: stack $stack gave no usable $v ('${!v}')" >&2; exit 1 ;; esac
done

work=$(mktemp -d)
trap 'kill "$(cat "$work/watch.pid" 2>/dev/null)" 2>/dev/null || true; rm -rf "$work"' EXIT

# live: app-tier instances pending or running.
live() {
	awsc ec2 describe-instances \
		--filters "Name=tag:$tag_key,Values=$stack" "Name=instance-state-name,Values=pending,running" \
		--query 'length(Reservations[].Instances[])' --output text
}

# wait_fleet_zero SECONDS: true once no app instance is pending or running.
wait_fleet_zero() {
	local deadline=$((SECONDS + $1))
	while :; do
		[ "$(live)" = 0 ] && return 0
		[ $SECONDS -ge $deadline ] && return 1
		sleep "$poll"
	done
}

# dlq_of QUEUE_URL: the URL of the queue's dead-letter queue (from its redrive policy).
dlq_of() {
	local arn
	arn=$(awsc sqs get-queue-attributes --queue-url "$1" --attribute-names RedrivePolicy \
		--query 'Attributes.RedrivePolicy' --output text | sed -n 's/.*"deadLetterTargetArn": *"\([^"]*\)".*/\1/p')
	[ -n "$arn" ] || { echo "smoke: $1 has no dead-letter queue" >&2; return 1; }
	awsc sqs get-queue-url --queue-name "${arn##*:}" --query QueueUrl --output text
}

# depth QUEUE_URL: visible + in flight + delayed.
depth() {
	awsc sqs get-queue-attributes --queue-url "$1" \
		--attribute-names ApproximateNumberOfMessages ApproximateNumberOfMessagesNotVisible ApproximateNumberOfMessagesDelayed \
		--query 'sum([to_number(Attributes.ApproximateNumberOfMessages), to_number(Attributes.ApproximateNumberOfMessagesNotVisible), to_number(Attributes.ApproximateNumberOfMessagesDelayed)])' \
		--output text
}

start=$SECONDS
fail=()
if ! wait_fleet_zero "$scale_wait"; then
	fail+=("fleet not at 0 before the test")
fi

# Watch the fleet's peak in the background.
echo 0 >"$work/peak"
(
	peak=0
	while :; do
		c=$(live 2>/dev/null || echo 0)
		if [ "$c" -gt "$peak" ] 2>/dev/null; then peak=$c; echo "$peak" >"$work/peak"; fi
		sleep "$poll"
	done
) &
echo $! >"$work/watch.pid"

# People: folders with at least two photos; the first is enrolled, the rest uploaded.
people=()
for d in "$faces"/*/; do
	name=$(basename "$d")
	mapfile -t photos < <(find "$d" -maxdepth 1 -type f \( -iname '*.jpg' -o -iname '*.jpeg' -o -iname '*.png' \) | sort)
	[ "${#photos[@]}" -ge 2 ] || continue
	people+=("$name")
	printf '%s\n' "${photos[@]}" >"$work/photos.$name"
done
[ "${#people[@]}" -gt 0 ] || { echo "smoke: no person in $faces has 2 photos" >&2; exit 2; }

enrolled=0
for p in "${people[@]}"; do
	first=$(head -n 1 "$work/photos.$p")
	code=$(curl -sS -o "$work/enroll.$p" -w '%{http_code}' --max-time "$timeout" \
		-H "Authorization: Bearer $key" -X PUT -F "image=@$first" "$web/v1/subjects/$p/faces") || code=000
	if [ "$code" = 201 ]; then
		enrolled=$((enrolled + 1))
	else
		fail+=("enroll $p: HTTP $code $(head -c 200 "$work/enroll.$p" 2>/dev/null)")
	fi
done

# upload I: sends photo I under a unique name and records "ok" or why not.
upload() {
	local i=$1 p photos k file name stem want got
	p=${people[$((i % ${#people[@]}))]}
	mapfile -t photos <"$work/photos.$p"
	k=$((1 + (i / ${#people[@]}) % (${#photos[@]} - 1)))
	file=${photos[$k]}
	name=$(printf 's%03d_%s' "$i" "$(basename "$file")")
	stem=${name%.*}
	want="$stem:$p"
	got=$(curl -sS --max-time "$timeout" -H "Authorization: Bearer $key" \
		-F "inputFile=@$file;filename=$name" "$web/") || got="curl failed"
	if [ "$got" = "$want" ]; then
		echo ok >"$work/up.$i"
	else
		echo "$name: got '$got', want '$want'" >"$work/up.$i"
	fi
}

for ((i = 0; i < n; i++)); do
	upload "$i" &
	while [ "$(jobs -rp | wc -l)" -gt "$parallel" ]; do sleep 0.2; done
done
# Wait for the uploads only (not the fleet watcher).
for pid in $(jobs -rp); do
	[ "$pid" = "$(cat "$work/watch.pid")" ] || wait "$pid" || true
done
upload_end=$SECONDS
correct=0
for ((i = 0; i < n; i++)); do
	r=$(cat "$work/up.$i" 2>/dev/null || echo "upload $i: no result")
	if [ "$r" = ok ]; then correct=$((correct + 1)); else fail+=("$r"); fi
done

if ! wait_fleet_zero "$scale_wait"; then
	fail+=("fleet did not return to 0 within ${scale_wait}s")
fi
back=$((SECONDS - upload_end))
kill "$(cat "$work/watch.pid")" 2>/dev/null || true
peak=$(cat "$work/peak")
[ "$peak" -gt 0 ] || [ "$need_ec2" = 0 ] || fail+=("no app instance was seen running (SMOKE_NEED_EC2=0 if overflow workers may answer alone)")

queues_state=empty
for q in "$req_q" "$resp_q" "$(dlq_of "$req_q")" "$(dlq_of "$resp_q")"; do
	d=-1
	for _ in 1 2 3 4 5 6; do
		d=$(depth "$q") && [ "$d" = 0 ] && break
		sleep 5
	done
	if [ "$d" != 0 ]; then
		queues_state="not empty"
		fail+=("queue $q holds $d messages")
	fi
done

for f in "${fail[@]}"; do echo "smoke: $f" >&2; done
verdict=ok
[ "${#fail[@]}" -eq 0 ] || verdict=FAILED
echo "smoke: stack $stack: $correct/$n correct, $enrolled enrolled, fleet 0 -> $peak -> 0 (back in ${back}s), queues and DLQs $queues_state, $((SECONDS - start))s: $verdict"
[ "$verdict" = ok ]
