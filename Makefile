# The two entry points of README.md:
#   make demo   installs what is needed, builds an image and boots it
#   make test   unit tests, host integration tests and real boots under QEMU (TCG)

GO      ?= go
OUT     ?= out
YAKIMG  := bin/yakimg
TIMEOUT ?= 10m

.PHONY: demo test deps tools fetch image boot vet clean

demo: image
	$(YAKIMG) boot $(OUT) --timeout $(TIMEOUT)

deps:
	./scripts/install-deps.sh
	$(GO) mod download

tools: deps
	$(GO) build -trimpath -o $(YAKIMG) ./cmd/yakimg

fetch: tools
	$(YAKIMG) fetch

image: fetch
	$(YAKIMG) build -o $(OUT)

vet: tools
	$(GO) vet ./...
	$(GO) run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...
	test -z "$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))"

# The image built here is what the boot tests use (YAKIMG_TEST_IMAGE); with
# YAKIMG_REQUIRE_IMAGE=1 a test that cannot find it fails instead of skipping.
test: vet image
	YAKIMG_TEST_IMAGE=$(CURDIR)/$(OUT) YAKIMG_TEST_KERNEL=$(CURDIR)/$(OUT)/vmlinuz YAKIMG_REQUIRE_IMAGE=1 \
		$(GO) test -p 1 -timeout 25m -count=1 ./...

clean:
	rm -rf $(OUT) bin
