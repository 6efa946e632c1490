# MicroPython user C module `tskernels` (make-based ports: stm32, rp2 via cmake below, unix, ...):
#   make -C ports/stm32 BOARD=... USER_C_MODULES=/path/to/tileswap/native/micropython
# See docs/native.md. Not built by tileswap's CI (no MicroPython source tree there).
TSKERNELS_MOD_DIR := $(USERMOD_DIR)
TSKERNELS_NATIVE := $(TSKERNELS_MOD_DIR)/../..

SRC_USERMOD += $(TSKERNELS_MOD_DIR)/modtskernels.c
SRC_USERMOD += $(addprefix $(TSKERNELS_NATIVE)/, ts_spatial.c ts_conv.c ts_conv_ref.c ts_dwconv.c ts_dwconv_ref.c \
	ts_pool.c ts_fc.c ts_fc_ref.c ts_elementwise.c ts_softmax.c ts_acc.c)

CFLAGS_USERMOD += -I$(TSKERNELS_NATIVE)
