package settings

import (
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/facefleet/facefleet/scaling"
)

// Setting names: the flag names, for Values' accessors.
const (
	Host               = "host"
	Port               = "port"
	Data               = "data"
	NoSync             = "no-sync"
	OutputLog          = "output-log"
	Gallery            = "gallery"
	Models             = "models"
	ORTLib             = "ort-lib"
	ORTThreads         = "ort-threads"
	Threshold          = "threshold"
	MaxBody            = "max-body"
	MaxPixels          = "max-pixels"
	MaxJPEGScans       = "max-jpeg-scans"
	MaxPending         = "max-pending"
	MaxInflightBytes   = "max-inflight-bytes"
	ClientCheckEvery   = "client-check-every"
	RequestTimeout     = "request-timeout"
	PollWait           = "poll-wait"
	StatusTTL          = "status-ttl"
	MaxReceives        = "max-receives"
	MaxInstances       = "max-instances"
	BootDelay          = "boot-delay"
	IdleTimeout        = "idle-timeout"
	MinLifetime        = "min-lifetime"
	VisibilityTimeout  = "visibility-timeout"
	ScaleEvery         = "scale-every"
	Policy             = "policy"
	Workers            = "workers"
	WorkerWait         = "worker-wait"
	MaxTails           = "max-tails"
	SelfStop           = "self-stop"
	InstanceID         = "instance-id"
	IMDSEndpoint       = "imds-endpoint"
	RequestQueueURL    = "request-queue-url"
	ResponseQueueURL   = "response-queue-url"
	RequestDLQURL      = "request-dlq-url"
	InputBucket        = "input-bucket"
	OutputBucket       = "output-bucket"
	GalleryPrefix      = "gallery-prefix"
	AppTagKey          = "app-tag-key"
	AppTagValue        = "app-tag-value"
	LaunchTemplateID   = "launch-template-id"
	MetricsNamespace   = "metrics-namespace"
	StepInterval       = "step-interval"
	DeadlineMargin     = "deadline-margin"
	AWSRegion          = "aws-region"
	AWSEndpoint        = "aws-endpoint"
	SQSEndpoint        = "sqs-endpoint"
	S3Endpoint         = "s3-endpoint"
	EC2Endpoint        = "ec2-endpoint"
	CloudWatchEndpoint = "cloudwatch-endpoint"
	LambdaEndpoint     = "lambda-endpoint"
	ScalerFunction     = "scaler-function"
	OverflowFunction   = "overflow-function"
	OverflowMax        = "overflow-max"
	OverflowActiveFor  = "overflow-active-for"
	OverflowMargin     = "overflow-margin"
	OverflowFleetCheck = "overflow-fleet-check"
	OverflowEC2Warmup  = "overflow-ec2-warmup"
	S3PathStyle        = "s3-path-style"
	AWSMaxAttempts     = "aws-max-attempts"
	LogLevel           = "log-level"
	RecognizeNeedsKey  = "recognize-needs-key"
	CourseNeedsKey     = "course-needs-key"
	KeyRate            = "key-rate"
	KeyBurst           = "key-burst"
	AnonRate           = "anon-rate"
	AnonBurst          = "anon-burst"
	KeyCacheTTL        = "key-cache-ttl"
)

// Defaults that library packages fall back to when a caller leaves an option
// zero; the declarations below use the same constants.
const (
	DefaultMaxBody    = 10 << 20
	DefaultMaxPixels  = 40_000_000
	DefaultMaxPending = 2000
	// DefaultMaxInflightBytes bounds the upload bytes a web tier holds at once.
	DefaultMaxInflightBytes = 256 << 20
	// DefaultRequestTimeout applies when the request queue's visibility is not
	// known; otherwise the request timeout is derived from it.
	DefaultRequestTimeout = time.Minute
	DefaultGalleryPrefix  = "gallery/"
)

// All returns every declared setting, in the order the README's table lists them.
func All() []Setting {
	var (
		servers = []Command{Up, Webtier}
		engines = []Command{Up, Apptier, Overflow, Bench, Enroll, Recognize}
		workers = []Command{Up, Apptier, Overflow}
		images  = []Command{Up, Webtier, Apptier, Overflow, Enroll, Recognize}
		aws     = []Command{Webtier, Apptier, Scaler, Overflow}
		tiers   = []Command{Webtier, Apptier, Overflow}
		// The AWS SDK settings; `facefleet keys` reads them to reach the output bucket.
		awsSDK = []Command{Webtier, Apptier, Scaler, Overflow, Keys}
	)
	return []Setting{
		// Listening.
		{Name: Host, Env: "FACEFLEET_HOST", Kind: String, Default: "127.0.0.1", For: servers,
			Help: "address to listen on (0.0.0.0 to accept other machines)"},
		{Name: Port, Env: "FACEFLEET_PORT", Kind: Int, Default: "8000", Min: "0", Max: "65535", For: servers,
			Help: "HTTP port (0: any free port)"},

		// Embedded stores.
		{Name: Data, Env: "FACEFLEET_DATA", Kind: String, Default: "./data", For: []Command{Up, Keys},
			Help: "data folder: inputs/, outputs/ (results, gallery/, failed/)"},
		{Name: NoSync, Env: "FACEFLEET_NO_SYNC", Kind: Bool, Default: "false", For: []Command{Up, Bench},
			Help: "write results without fsync (faster; a machine crash may lose the latest results)"},
		{Name: OutputLog, Env: "FACEFLEET_OUTPUT_LOG", Kind: Bool, Default: "true", For: []Command{Up, Bench},
			Help: "acknowledge each result by one append to a write-ahead log in outputs/.wal instead of syncing its files, and make result files in the background (same durability, less waiting; one service per data folder; false: synced file by file)"},
		{Name: Gallery, Env: "FACEFLEET_GALLERY", Kind: String, For: []Command{Up},
			Help: "merge a gallery file written by `facefleet enroll` into the stored gallery"},

		// Engine.
		{Name: Models, Env: "FACEFLEET_MODELS", Kind: String, Default: "build/models", For: engines,
			Help: "folder of the converted .onnx models (overflow Lambda, when unset: $LAMBDA_TASK_ROOT/models, in its zip)"},
		{Name: ORTLib, Env: "FACEFLEET_ORT_LIB", Kind: String, Default: "build/lib/libonnxruntime.so.1", For: engines,
			Help: "ONNX Runtime shared library (overflow Lambda, when unset: $LAMBDA_TASK_ROOT/lib/libonnxruntime.so.1)"},
		{Name: ORTThreads, Env: "FACEFLEET_ORT_THREADS", Kind: Int, Default: "1", Min: "1", Max: "64", For: engines,
			Aliases: []string{"threads"},
			Help:    "ONNX Runtime intra-op threads per model run (workers share one engine and run in parallel; keep 1 on small machines)"},
		{Name: Threshold, Env: "FACEFLEET_THRESHOLD", Kind: Float, Default: "0.6", Min: "0.01", Max: "2", For: []Command{Up, Webtier, Apptier, Overflow, Recognize},
			Help: "largest descriptor distance that still names a person (web tier: what POST /v1/verify calls a match)"},

		// Request limits.
		{Name: MaxBody, Env: "FACEFLEET_MAX_BODY", Kind: Int, Default: strconv.Itoa(DefaultMaxBody), Min: "1024", Max: "1073741824", For: images,
			Aliases: []string{"max-body-bytes"},
			Help:    "largest request body and image in bytes (413 beyond)"},
		{Name: MaxPixels, Env: "FACEFLEET_MAX_PIXELS", Kind: Int, Default: strconv.Itoa(DefaultMaxPixels), Min: "1", Max: "1000000000", For: images,
			Help: "largest width x height, read from the header before decoding (413 beyond)"},
		{Name: MaxJPEGScans, Env: "FACEFLEET_MAX_JPEG_SCANS", Kind: Int, Default: "100", Min: "1", Max: "10000", For: []Command{Up, Apptier, Overflow, Enroll, Recognize},
			Help: "most scans (SOS markers) in a JPEG, counted before any decoder runs (422 beyond): each scan is a pass over the whole image, and Go's image/jpeg fallback has no limit of its own; encoders write 1-3 (baseline) or about 10 (progressive)"},
		{Name: MaxPending, Env: "FACEFLEET_MAX_PENDING", Kind: Int, Default: strconv.Itoa(DefaultMaxPending), Min: "1", Max: "1000000", For: servers,
			Help: "uploads waiting for an answer at once (503 + Retry-After beyond)"},
		{Name: RequestTimeout, Env: "FACEFLEET_REQUEST_TIMEOUT", Kind: Duration, Min: "1s", Max: "1h", For: servers,
			Help: "how long an upload waits for its answer (504 beyond); empty: max receives × the request queue's visibility + poll wait + 5 s (1m45s with the defaults), so a request that crashes its workers gets its 502 first; a shorter value is refused"},
		{Name: MaxInflightBytes, Env: "FACEFLEET_MAX_INFLIGHT_BYTES", Kind: Int, Default: strconv.Itoa(DefaultMaxInflightBytes), Min: "1048576", Max: "68719476736", For: servers,
			Help: "upload bytes held in memory at once, from before a body is read until the image is stored (503 + Retry-After beyond; waiting callers hold none)"},
		{Name: ClientCheckEvery, Env: "FACEFLEET_CLIENT_CHECK_EVERY", Kind: Duration, Default: "1s", Min: "10ms", Max: "1m", For: servers,
			Help: "how often a waiting caller's connection is checked; one that went away frees its slot (its request stays queued)"},
		{Name: PollWait, Env: "FACEFLEET_POLL_WAIT", Kind: Duration, Default: "10s", Min: "1s", Max: "20s", For: []Command{Webtier},
			Help: "response queue long-poll wait"},

		{Name: StatusTTL, Env: "FACEFLEET_STATUS_TTL", Kind: Duration, Default: "2s", Min: "100ms", Max: "1m", For: servers,
			Help: "how long /v1/status and /metrics reuse one snapshot of the queue counts and the fleet (each snapshot: a count per queue and a fleet listing)"},

		// Queue and workers.
		{Name: VisibilityTimeout, Env: "FACEFLEET_VISIBILITY_TIMEOUT", Kind: Duration, Min: "1s", Max: "12h", For: workers,
			Help: "request visibility timeout, extended while an image is processed (empty: 30s in up; on AWS the request queue's, and a value that differs from it is refused)"},
		{Name: MaxReceives, Env: "FACEFLEET_MAX_RECEIVES", Kind: Int, Min: "1", Max: "1000", For: servers,
			Help: "receives before a request goes to the dead-letter queue (empty: 3 in up; on AWS the request queue's maxReceiveCount, and a value that differs from it is refused)"},
		{Name: IdleTimeout, Env: "FACEFLEET_IDLE_TIMEOUT", Kind: Duration, Default: "10s", Min: "0s", Max: "24h", For: workers,
			Help: "a worker with no work this long stops itself (0: never)"},
		{Name: MinLifetime, Env: "FACEFLEET_MIN_LIFETIME", Kind: Duration, Default: "1m", Min: "0s", Max: "24h", For: workers,
			Help: "...but never sooner than this after it started (EC2 bills 60 s per start)"},
		{Name: Workers, Env: "FACEFLEET_WORKERS", Kind: Int, Default: "1", Min: "1", Max: "64", For: []Command{Apptier},
			Help: "worker loops in this process, sharing one engine (one per vCPU on AWS)"},
		{Name: MaxTails, Env: "FACEFLEET_MAX_TAILS", Kind: Int, Default: "4", Min: "1", Max: "64", For: workers,
			Help: "results a worker stores, answers and deletes while it analyses the next images (1: it waits for each)"},
		{Name: WorkerWait, Env: "FACEFLEET_WORKER_WAIT", Kind: Duration, Default: "5s", Min: "1s", Max: "20s", For: []Command{Apptier, Overflow},
			Aliases: []string{"wait"},
			Help:    "request queue long-poll wait"},
		{Name: SelfStop, Env: "FACEFLEET_SELF_STOP", Kind: String, Default: "ec2", For: []Command{Apptier}, Check: checkSelfStop,
			Help: "what an idle worker does: ec2 (StopInstances on this instance), exec:CMD (run CMD via sh -c), or none (just exit)"},
		{Name: InstanceID, Env: "FACEFLEET_INSTANCE_ID", Kind: String, For: []Command{Apptier},
			Help: "this instance's id (default: read from IMDSv2 when -self-stop=ec2, else the host name)"},
		{Name: IMDSEndpoint, Env: "FACEFLEET_IMDS_ENDPOINT", Kind: String, For: []Command{Apptier}, Check: absoluteURL,
			Help: "instance metadata endpoint (default: the SDK's, 169.254.169.254)"},

		// Scaling.
		{Name: MaxInstances, Env: "FACEFLEET_MAX_INSTANCES", Kind: Int, Default: "0", Min: "0", Max: "1000", For: []Command{Up, Scaler, Bench},
			Aliases: []string{"instances"},
			Help:    "cap on pending + running workers (0: up and benchservice run cores / -ort-threads, each a model run at a time on one shared engine; the scaler Lambda 20 instances)"},
		{Name: BootDelay, Env: "FACEFLEET_BOOT_DELAY", Kind: Duration, Default: "0s", Min: "0s", Max: "10m", For: []Command{Up},
			Help: "simulated instance boot time"},
		{Name: ScaleEvery, Env: "FACEFLEET_SCALE_EVERY", Kind: Duration, Default: "1s", Min: "100ms", Max: "1m", For: []Command{Up},
			Help: "scaling controller period"},
		{Name: Policy, Env: "FACEFLEET_POLICY", Kind: String, Default: scaling.NameBacklogDrain, OneOf: scaling.AcceptedPolicyNames(), For: []Command{Up},
			Help: "scaling policy (docs/scaling.md; locally backlog-drain starts one instance per queued request, as local starts bill nothing; the former names facefleet and seed are accepted for one release)"},
		{Name: StepInterval, Env: "FACEFLEET_STEP_INTERVAL", Kind: Duration, Default: "5s", Min: "100ms", Max: "1m", For: []Command{Scaler},
			Help: "scaling steps within one invocation are this far apart"},
		{Name: DeadlineMargin, Env: "FACEFLEET_DEADLINE_MARGIN", Kind: Duration, Default: "3s", Min: "100ms", Max: "30s", For: []Command{Scaler},
			Help: "stop stepping this long before the invocation's deadline"},
		{Name: LaunchTemplateID, Env: "FACEFLEET_LAUNCH_TEMPLATE_ID", Kind: String, For: []Command{Scaler}, Required: []Command{Scaler},
			Help: "the app tier's launch template id, lt-..."},
		{Name: MetricsNamespace, Env: "FACEFLEET_METRICS_NAMESPACE", Kind: String, Default: "Facefleet", For: []Command{Scaler},
			Help: "CloudWatch namespace of the published metrics"},

		// AWS resources.
		{Name: RequestQueueURL, Env: "FACEFLEET_REQUEST_QUEUE_URL", Kind: String, For: aws, Required: aws, Check: absoluteURL,
			Help: "SQS request queue URL"},
		{Name: ResponseQueueURL, Env: "FACEFLEET_RESPONSE_QUEUE_URL", Kind: String, For: tiers, Required: tiers, Check: absoluteURL,
			Help: "SQS response queue URL"},
		{Name: RequestDLQURL, Env: "FACEFLEET_REQUEST_DLQ_URL", Kind: String, For: []Command{Webtier}, Check: absoluteURL,
			Help: "the request queue's dead-letter queue URL (optional: the web tier then answers dead-lettered requests at once)"},
		{Name: InputBucket, Env: "FACEFLEET_INPUT_BUCKET", Kind: String, For: tiers, Required: tiers,
			Help: "S3 bucket for uploaded images"},
		{Name: OutputBucket, Env: "FACEFLEET_OUTPUT_BUCKET", Kind: String, For: []Command{Webtier, Apptier, Overflow, Keys, Scaler}, Required: tiers,
			Help: "S3 bucket for results, the gallery and the API keys (keys: when set, instead of -data; scaler: where it keeps its recent decisions, scaler/decisions.json, for /v1/status; unset: only logged)"},
		{Name: GalleryPrefix, Env: "FACEFLEET_GALLERY_PREFIX", Kind: String, Default: DefaultGalleryPrefix, For: tiers,
			Help: "prefix of the shared gallery in the output bucket (journal/ and snapshot/ under it; a gallery.json an older facefleet left there is imported once)"},
		{Name: AppTagKey, Env: "FACEFLEET_APP_TAG_KEY", Kind: String, For: []Command{Webtier, Scaler, Overflow}, Required: []Command{Scaler, Overflow},
			Together: AppTagValue, Aliases: []string{"fleet-tag-key"},
			Help: "tag key marking app-tier instances (web tier: optional, reports the fleet on /v1/status; overflow: it stops once one of them runs)"},
		{Name: AppTagValue, Env: "FACEFLEET_APP_TAG_VALUE", Kind: String, For: []Command{Webtier, Scaler, Overflow}, Required: []Command{Scaler, Overflow},
			Together: AppTagKey, Aliases: []string{"fleet-tag-value"},
			Help: "tag value marking app-tier instances"},
		{Name: ScalerFunction, Env: "FACEFLEET_SCALER_FUNCTION", Kind: String, For: []Command{Webtier},
			Help: "name or ARN of the scaler Lambda: when a request finds no app-tier instance pending or running (checked at most every 5 s), the web tier invokes it asynchronously (empty: no nudge; the scaler waits for its schedule or alarm)"},

		// Overflow (issue 15): Lambda workers that answer while EC2 capacity boots.
		{Name: OverflowFunction, Env: "FACEFLEET_OVERFLOW_FUNCTION", Kind: String, For: []Command{Scaler},
			Help: "name or ARN of the overflow Lambda (functions/overflow): while a backlog waits and no app-tier instance runs, the scaler invokes it asynchronously as many times as the policy decides (empty: no overflow, EC2 only)"},
		{Name: OverflowMax, Env: "FACEFLEET_OVERFLOW_MAX", Kind: Int, Default: "10", Min: "1", Max: "1000", For: []Command{Scaler},
			Help: "most overflow invocations at once: the function's reserved concurrency (template OverflowReservedConcurrency)"},
		{Name: OverflowActiveFor, Env: "FACEFLEET_OVERFLOW_ACTIVE_FOR", Kind: Duration, Default: "10s", Min: "1s", Max: "15m", For: []Command{Scaler},
			Help: "the scaler counts an overflow invocation it made as running for this long, until its marker (overflow/running/ in the output bucket) shows: an asynchronous delivery and a cold start"},
		{Name: OverflowMargin, Env: "FACEFLEET_OVERFLOW_MARGIN", Kind: Duration, Default: "10s", Min: "1s", Max: "5m", For: []Command{Overflow},
			Help: "an overflow invocation stops receiving this long before its deadline; must exceed -worker-wait plus one image's analysis, so the images in hand are answered before Lambda ends it (one that is not goes back to the queue by its visibility timeout)"},
		{Name: OverflowFleetCheck, Env: "FACEFLEET_OVERFLOW_FLEET_CHECK", Kind: Duration, Default: "3s", Min: "100ms", Max: "1m", For: []Command{Overflow},
			Help: "how often an overflow invocation lists the app tier (ec2:DescribeInstances by tag); once an instance has run for -overflow-ec2-warmup it stops receiving and returns"},
		{Name: OverflowEC2Warmup, Env: "FACEFLEET_OVERFLOW_EC2_WARMUP", Kind: Duration, Default: "2s", Min: "0s", Max: "5m", For: []Command{Overflow},
			Help: "an app-tier instance takes over from the overflow once it has been running this long: its worker still loads the models after EC2 reports it running (2s: the simulator's model-load assumption; raise it if your instances take longer, see the worker's journal)"},

		// AWS SDK.
		{Name: AWSRegion, Env: "AWS_REGION", Kind: String, For: awsSDK,
			Help: "AWS region (default: the shared config)"},
		{Name: AWSEndpoint, Env: "FACEFLEET_AWS_ENDPOINT", Kind: String, For: awsSDK, Check: absoluteURL,
			Help: "base endpoint URL for every AWS service (an emulator; default: AWS_ENDPOINT_URL or AWS)"},
		{Name: SQSEndpoint, Env: "AWS_ENDPOINT_URL_SQS", Kind: String, For: awsSDK, Check: absoluteURL,
			Help: "SQS endpoint URL"},
		{Name: S3Endpoint, Env: "AWS_ENDPOINT_URL_S3", Kind: String, For: awsSDK, Check: absoluteURL,
			Help: "S3 endpoint URL"},
		{Name: EC2Endpoint, Env: "AWS_ENDPOINT_URL_EC2", Kind: String, For: awsSDK, Check: absoluteURL,
			Help: "EC2 endpoint URL"},
		{Name: CloudWatchEndpoint, Env: "AWS_ENDPOINT_URL_CLOUDWATCH", Kind: String, For: awsSDK, Check: absoluteURL,
			Help: "CloudWatch endpoint URL"},
		{Name: LambdaEndpoint, Env: "AWS_ENDPOINT_URL_LAMBDA", Kind: String, For: []Command{Webtier, Scaler}, Check: absoluteURL,
			Help: "Lambda endpoint URL (the web tier's scaler nudge; the scaler's overflow invokes)"},
		{Name: S3PathStyle, Env: "FACEFLEET_S3_PATH_STYLE", Kind: Bool, Default: "false", For: awsSDK,
			Help: "address S3 buckets path-style (emulators on 127.0.0.1 need it)"},
		{Name: AWSMaxAttempts, Env: "FACEFLEET_AWS_MAX_ATTEMPTS", Kind: Int, Default: "0", Min: "0", Max: "20", For: awsSDK,
			Help: "SDK retry attempts per call (0: the SDK's default, 3)"},

		// Access (API keys: README "API keys").
		{Name: RecognizeNeedsKey, Env: "FACEFLEET_RECOGNIZE_NEEDS_KEY", Kind: Bool, Default: "false", For: servers,
			Help: "POST /v1/recognize needs a recognize or admin API key (401 without)"},
		{Name: CourseNeedsKey, Env: "FACEFLEET_COURSE_NEEDS_KEY", Kind: Bool, Default: "false", For: servers,
			Help: "the course contract POST / needs a recognize or admin API key"},
		{Name: KeyRate, Env: "FACEFLEET_KEY_RATE", Kind: Float, Default: "100", Min: "0", Max: "1000000", For: servers,
			Help: "requests per second per API key (token bucket; 429 + Retry-After beyond; 0: unlimited; a key's own -rate wins)"},
		{Name: KeyBurst, Env: "FACEFLEET_KEY_BURST", Kind: Int, Default: "200", Min: "1", Max: "1000000", For: servers,
			Help: "burst per API key"},
		{Name: AnonRate, Env: "FACEFLEET_ANON_RATE", Kind: Float, Default: "0", Min: "0", Max: "1000000", For: servers,
			Help: "requests per second per client address without a key on the open routes (0: unlimited, as the course's generator sends 1000 at once from one address)"},
		{Name: AnonBurst, Env: "FACEFLEET_ANON_BURST", Kind: Int, Default: "0", Min: "0", Max: "1000000", For: servers,
			Help: "burst per client address without a key (0: twice -anon-rate)"},
		{Name: KeyCacheTTL, Env: "FACEFLEET_KEY_CACHE_TTL", Kind: Duration, Default: "5s", Min: "0s", Max: "10m", For: servers,
			Help: "how long a checked key is trusted before the store is read again: a revoked key stops working within this (0: read every time)"},

		{Name: LogLevel, Env: "FACEFLEET_LOG_LEVEL", Kind: String, Default: "info", OneOf: []string{"debug", "info", "warn", "error"},
			For: []Command{Up, Webtier, Apptier, Overflow}, Help: "log level (debug also logs every no-op scaling decision)"},
	}
}

// checkSelfStop accepts ec2, none or exec:CMD.
func checkSelfStop(v string) error {
	mode, cmd, ok := strings.Cut(v, ":")
	if (mode == "ec2" || mode == "none") && !ok || mode == "exec" && strings.TrimSpace(cmd) != "" {
		return nil
	}
	return errors.New("must be ec2, none or exec:CMD")
}
