/* Stand-in for MicroPython's py/runtime.h (tests/test_tskernels_module.py). */
#include "obj.h"
