# MicroPython user C module `tskernels` (CMake-based ports: esp32, rp2):
#   make -C ports/rp2 BOARD=... USER_C_MODULES=/path/to/tileswap/native/micropython/micropython.cmake
# See docs/native.md. Not built by tileswap's CI (no MicroPython source tree there).
set(TSKERNELS_NATIVE ${CMAKE_CURRENT_LIST_DIR}/../..)

add_library(usermod_tskernels INTERFACE)

target_sources(usermod_tskernels INTERFACE
    ${CMAKE_CURRENT_LIST_DIR}/modtskernels.c
    ${TSKERNELS_NATIVE}/ts_spatial.c
    ${TSKERNELS_NATIVE}/ts_conv.c
    ${TSKERNELS_NATIVE}/ts_conv_ref.c
    ${TSKERNELS_NATIVE}/ts_dwconv.c
    ${TSKERNELS_NATIVE}/ts_dwconv_ref.c
    ${TSKERNELS_NATIVE}/ts_pool.c
    ${TSKERNELS_NATIVE}/ts_fc.c
    ${TSKERNELS_NATIVE}/ts_fc_ref.c
    ${TSKERNELS_NATIVE}/ts_elementwise.c
    ${TSKERNELS_NATIVE}/ts_softmax.c
    ${TSKERNELS_NATIVE}/ts_acc.c
)

target_include_directories(usermod_tskernels INTERFACE
    ${TSKERNELS_NATIVE}
)

target_link_libraries(usermod INTERFACE usermod_tskernels)
