# airssys — the two commands are `make bench` and `make test`.
# Every target installs missing packages first (tools/install-deps.sh).

BUILD      ?= build
GENERATOR  ?= Ninja
CMAKE      ?= cmake
CTEST_ARGS ?= --output-on-failure -j2
BENCH_ARGS ?=

.PHONY: all build deps test bench demo sanitize asan tsan noexcept clean

all: build

deps:
	@tools/install-deps.sh

build: deps
	$(CMAKE) -S . -B $(BUILD) -G $(GENERATOR) -DCMAKE_BUILD_TYPE=Release \
	  -DAIRSSYS_TESTS=ON -DAIRSSYS_BENCH=ON -DAIRSSYS_EXCEPTIONS=ON -DAIRSSYS_SANITIZE=
	$(CMAKE) --build $(BUILD)

test: build
	cd $(BUILD) && ctest $(CTEST_ARGS)

bench: build
	$(BUILD)/bin/airssys-bench $(BENCH_ARGS)

# The examples and a short airssys-run --procfile session (examples/Procfile.demo):
# each must exit 0 and leave nothing in the process table (tools/demo.sh checks).
demo: deps
	$(CMAKE) -S . -B $(BUILD) -G $(GENERATOR) -DCMAKE_BUILD_TYPE=Release \
	  -DAIRSSYS_TESTS=ON -DAIRSSYS_BENCH=ON -DAIRSSYS_EXCEPTIONS=ON -DAIRSSYS_SANITIZE=
	$(CMAKE) --build $(BUILD) --target airssys-run example_supervised_workers example_process_pool
	tools/demo.sh $(BUILD)/bin

# ASan+UBSan, then TSan: each its own build tree, tests only.
sanitize: asan tsan

asan: deps
	$(CMAKE) -S . -B build-asan -G $(GENERATOR) -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DAIRSSYS_SANITIZE=address -DAIRSSYS_BENCH=OFF
	$(CMAKE) --build build-asan
	cd build-asan && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest $(CTEST_ARGS)

tsan: deps
	$(CMAKE) -S . -B build-tsan -G $(GENERATOR) -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DAIRSSYS_SANITIZE=thread -DAIRSSYS_BENCH=OFF
	$(CMAKE) --build build-tsan
	cd build-tsan && TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 ctest $(CTEST_ARGS)

noexcept: deps
	$(CMAKE) -S . -B build-noexcept -G $(GENERATOR) -DCMAKE_BUILD_TYPE=Release \
	  -DAIRSSYS_EXCEPTIONS=OFF -DAIRSSYS_BENCH=OFF
	$(CMAKE) --build build-noexcept
	cd build-noexcept && ctest $(CTEST_ARGS)

clean:
	rm -rf $(BUILD) build-asan build-tsan build-noexcept
