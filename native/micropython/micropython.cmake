# Entry point for CMake-based MicroPython ports: USER_C_MODULES=/path/to/tileswap/native/micropython/micropython.cmake
include(${CMAKE_CURRENT_LIST_DIR}/tskernels/micropython.cmake)
