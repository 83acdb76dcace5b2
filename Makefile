# unigen — build, test, sanitize, install.  `make help` lists the targets.
CC      ?= gcc
PREFIX  ?= /usr/local
ARCH    ?= -march=native
BUILD   ?= build

BLAS_INC := /usr/include/x86_64-linux-gnu/openblas-openmp
BLAS_LIB := /usr/lib/x86_64-linux-gnu/openblas-openmp

WARN    := -Wall -Wextra -Wno-unused-parameter -Wshadow -Wstrict-prototypes -Wvla
ifeq ($(WERROR),1)
WARN    += -Werror
endif
# Never -ffast-math: NLL and log-det training rely on NaN/Inf checks. -fno-math-errno only
# lets libm calls vectorize; -fno-trapping-math only lets the compiler compute both sides of a
# float select (nothing here enables float traps or reads the exception flags): without it GCC
# leaves the SiLU / sigmoid / tanh loops scalar on AVX2 (AVX-512's masks hide the problem).
# Neither changes a result.
# 512-bit vectors where the compiler has them: GCC's default for -march=native on AVX-512 parts is
# 256-bit; the pointwise kernels (SiLU's vectorized exp) then run at half width while OpenBLAS
# already keeps the core in its AVX-512 state. Same operations per element, so same results.
VEC512  := $(shell $(CC) -mprefer-vector-width=512 -E -x c /dev/null >/dev/null 2>&1 && echo -mprefer-vector-width=512)
# -fvect-cost-model=dynamic: GCC 12's -O2 uses the "very cheap" model, which vectorizes a loop
# only when no epilogue or runtime alias check is needed, so most loops of unknown length stayed
# scalar (attention's row updates, the group norm's dx pass, broadcast adds, row copies). The
# vectorized loops do the same operations per element in the same order (no reassociation
# without -ffast-math), so results are bit for bit the same.
VECCOST := $(shell $(CC) -fvect-cost-model=dynamic -E -x c /dev/null >/dev/null 2>&1 && echo -fvect-cost-model=dynamic)
OPT     ?= -O2 $(ARCH) $(VEC512) $(VECCOST) -fno-math-errno -fno-trapping-math
CFLAGS  += -std=c11 -D_GNU_SOURCE -fPIC -fopenmp $(OPT) $(WARN) -g \
           -Iinclude -Isrc -I$(BLAS_INC) $(EXTRA_CFLAGS)
LDLIBS  := -L$(BLAS_LIB) -Wl,-rpath,$(BLAS_LIB) -llapacke -lopenblas -lcjson -lpng -lz -lm -fopenmp

# make MPI=1: the data-parallel build (src/dist/mpi.c, UG_MPI) with Open MPI's flags, taken from
# mpicc so that gcc stays the compiler; the plain build compiles src/dist/none.c instead and needs
# no MPI headers. A build directory remembers its kind (.mpi-0 / .mpi-1), so switching relinks.
ifeq ($(MPI),1)
MPI_CFLAGS := $(shell mpicc --showme:compile 2>/dev/null) -DUG_MPI
MPI_LIBS   := $(shell mpicc --showme:link 2>/dev/null)
DIST_SKIP  := src/dist/none.c
KIND       := $(BUILD)/.mpi-1
else
DIST_SKIP  := src/dist/mpi.c
KIND       := $(BUILD)/.mpi-0
endif
CFLAGS  += $(MPI_CFLAGS)
LDLIBS  += $(MPI_LIBS)

LIB_SRC  := $(filter-out $(DIST_SKIP),$(sort $(shell find src -name '*.c')))
CLI_SRC  := $(sort $(wildcard cli/*.c))
TEST_SRC := $(sort $(wildcard tests/*.c))
BENCH_SRC := $(sort $(wildcard bench/*.c))
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/obj/%.o)
CLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/obj/%.o)
TEST_OBJ := $(TEST_SRC:%.c=$(BUILD)/obj/%.o)
DEPS_OK  := $(BUILD)/.deps-ok

.PHONY: all test asan bench install clean help demo install-check mutation-check accept fuzz
all: $(BUILD)/libunigen.a $(BUILD)/libunigen.so $(BUILD)/unigen

help:
	@echo "make            build/libunigen.a, build/libunigen.so, build/unigen"
	@echo "make test       build and run the whole test suite"
	@echo "make MPI=1 BUILD=build-mpi   the same with data-parallel unigen over Open MPI"
	@echo "                (make test MPI=1 also runs the mpirun tests; UG_MPIRUN names the launcher)"
	@echo "make asan       the suite under AddressSanitizer + UndefinedBehaviorSanitizer"
	@echo "make bench      W1-W5 against the PyTorch peers, one table + build/bench/bench.json (ROUNDS=3 QUICK=0)"
	@echo "make accept     long acceptance trainings (binarized MNIST table, NICE one epoch)"
	@echo "make install PREFIX=DIR   header, libraries, unigen.pc, the unigen binary"
	@echo "make fuzz FUZZ_SECONDS=N  libFuzzer harnesses of every parser (clang), N s each"

# Installs missing Debian packages once per build directory (with MPI=1 also Open MPI).
DEPS_MPI := $(if $(filter 1,$(MPI)),--mpi)
$(DEPS_OK):
	@mkdir -p $(BUILD)
	@scripts/deps.sh --check $(DEPS_MPI) 2>/dev/null || scripts/deps.sh $(DEPS_MPI)
	@touch $@

$(KIND): | $(DEPS_OK)
	@rm -f $(BUILD)/.mpi-0 $(BUILD)/.mpi-1
	@touch $@

# The compiler flags in effect: a build directory recompiles everything when they change.
FLAGS_STAMP := $(BUILD)/.cflags
$(shell mkdir -p $(BUILD) && (echo '$(CC) $(CFLAGS)' | cmp -s - $(FLAGS_STAMP) || echo '$(CC) $(CFLAGS)' > $(FLAGS_STAMP)))

$(BUILD)/obj/%.o: %.c $(FLAGS_STAMP) | $(DEPS_OK)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/libunigen.a: $(LIB_OBJ) $(KIND)
	@rm -f $@
	ar rcs $@ $(LIB_OBJ)

$(BUILD)/libunigen.so: $(LIB_OBJ) $(KIND)
	$(CC) -shared -o $@ $(LIB_OBJ) $(LDLIBS)

$(BUILD)/unigen: $(CLI_OBJ) $(BUILD)/libunigen.a
	$(CC) -o $@ $(CLI_OBJ) $(BUILD)/libunigen.a $(LDLIBS)

$(BUILD)/test_unigen: $(TEST_OBJ) $(BUILD)/libunigen.a
	$(CC) -o $@ $(TEST_OBJ) $(BUILD)/libunigen.a $(LDLIBS)

# Passive OpenMP waiting unless the caller chooses: on a busy machine spinning threads of the
# suite and of the CLI runs it starts can slow a 3 s test down a hundredfold (bench/NOTES.md).
test: $(BUILD)/test_unigen $(BUILD)/unigen
	cd tests && OMP_WAIT_POLICY=$${OMP_WAIT_POLICY:-passive} UG_CLI=../$(BUILD)/unigen \
	    ../$(BUILD)/test_unigen $(T)

# The same suite, instrumented. Leak checking stays on: nothing may leak.
asan:
	$(MAKE) BUILD=build-asan OPT="-O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=all" \
	    EXTRA_LD="-fsanitize=address,undefined" build-asan/test_unigen build-asan/unigen
	cd tests && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1 \
	    OMP_WAIT_POLICY=$${OMP_WAIT_POLICY:-passive} UG_CLI=../build-asan/unigen ../build-asan/test_unigen $(T)

LDLIBS += $(EXTRA_LD)

$(BUILD)/bench_%: bench/bench_%.c $(BUILD)/libunigen.a
	$(CC) $(CFLAGS) -o $@ $< $(BUILD)/libunigen.a $(LDLIBS)

# W1-W5 (../shared/peers) side by side with the PyTorch peers: bench/run.sh, which builds the
# bench programs, alternates unigen and peer runs (ROUNDS=3; QUICK=1 cuts steps) and writes
# $(BUILD)/bench/bench.json. Without /usr/bin/python3's torch the PyTorch columns say skipped.
PEERS ?= ../shared/peers
bench:
	BUILD=$(BUILD) PEERS=$(PEERS) bench/run.sh --peers

$(BUILD)/unigen.pc: Makefile
	@mkdir -p $(BUILD)
	printf 'prefix=%s\nlibdir=$${prefix}/lib\nincludedir=$${prefix}/include\n\nName: unigen\nDescription: generative models on CPUs\nVersion: %s\nLibs: -L$${libdir} -lunigen\nLibs.private: %s\nCflags: -I$${includedir}\n' \
	    "$(PREFIX)" "$$(sed -n 's/#define UG_VERSION_STRING "\(.*\)"/\1/p' include/unigen.h)" \
	    "-L$(BLAS_LIB) -lopenblas -llapacke -lcjson -lpng -lz -lm -fopenmp" > $@

install: all $(BUILD)/unigen.pc
	install -d $(DESTDIR)$(PREFIX)/include $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/bin
	install -m 644 include/unigen.h $(DESTDIR)$(PREFIX)/include/
	install -m 644 $(BUILD)/libunigen.a $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(BUILD)/libunigen.so $(DESTDIR)$(PREFIX)/lib/
	install -m 644 $(BUILD)/unigen.pc $(DESTDIR)$(PREFIX)/lib/pkgconfig/
	install -m 755 $(BUILD)/unigen $(DESTDIR)$(PREFIX)/bin/

clean:
	rm -rf build build-asan

-include $(LIB_OBJ:.o=.d) $(CLI_OBJ:.o=.d) $(TEST_OBJ:.o=.d)

# Installs into a scratch prefix and builds examples/mlp.c with pkg-config, as a user would.
install-check: all
	rm -rf $(BUILD)/stage && $(MAKE) -s install PREFIX=$(CURDIR)/$(BUILD)/stage
	PKG_CONFIG_PATH=$(CURDIR)/$(BUILD)/stage/lib/pkgconfig sh -c \
	    '$(CC) -std=c11 examples/mlp.c -o $(BUILD)/example_mlp $$(pkg-config --cflags unigen) $(CURDIR)/$(BUILD)/stage/lib/libunigen.a $$(pkg-config --libs-only-other --libs --static unigen | sed "s/-lunigen//")'
	$(BUILD)/example_mlp

# libFuzzer + ASan + UBSan harnesses of every parser (tests/fuzz/), built with clang into
# $(BUILD)-fuzz and run FUZZ_SECONDS each on a scratch copy of the seed corpus. Needs clang only here.
FUZZ_SECONDS ?= 60
fuzz:
	FUZZ_LDLIBS="$(LDLIBS)" scripts/fuzz.sh $(BUILD) $(FUZZ_SECONDS)

mutation-check: $(BUILD)/test_unigen
	scripts/mutation_check.sh $(BUILD)

# Trains EDM on two moons (about 20 s on 2 cores), samples with Heun, draws the samples over
# the data. The run directory also holds the config, metrics, loss curve and checkpoint.
# The long acceptance runs (hours on 2 cores): MODELS="fvsbn nade made made32 vae nice".
accept: all
	scripts/accept.sh $(BUILD) $(MODELS)

demo: all
	rm -rf $(BUILD)/demo
	$(BUILD)/unigen train --family diffusion --formulation edm --model mlp-toy --data moons \
	    --steps 4000 --batch 512 --lr 2e-3 --lr-schedule cosine --warmup 100 --ema 0.995 \
	    --log-every 500 --out $(BUILD)/demo
	@echo "demo: samples over the data in $(BUILD)/demo/samples.png (loss curve: $(BUILD)/demo/loss.png)"
