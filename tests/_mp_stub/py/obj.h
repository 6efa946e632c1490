/* Stand-ins for MicroPython's py/obj.h, for tests/test_tskernels_module.py only. */
#pragma once
#include <stdbool.h>
#include <stdint.h>
#include <stddef.h>
typedef void *mp_obj_t;
typedef intptr_t mp_int_t;
typedef struct { void *buf; size_t len; int typecode; } mp_buffer_info_t;
typedef struct { const void *type; } mp_obj_base_t;
typedef struct { int dummy; } mp_obj_type_t;
typedef struct { mp_obj_base_t base; void *globals; } mp_obj_module_t;
typedef struct { int dummy; } mp_obj_dict_t;
typedef struct { const void *key; const void *value; } mp_rom_map_elem_t;
#define MP_BUFFER_READ 1
#define MP_BUFFER_WRITE 2
void mp_get_buffer_raise(mp_obj_t o, mp_buffer_info_t *bi, int flags);
void mp_raise_ValueError(const char *msg) __attribute__((noreturn));
#define MP_ERROR_TEXT(x) x
mp_int_t mp_obj_get_int(mp_obj_t o);
int mp_obj_is_true(mp_obj_t o);
extern mp_obj_t mp_const_none;
typedef mp_obj_t (*fun_var_t)(size_t, const mp_obj_t *);
#define MP_DEFINE_CONST_FUN_OBJ_VAR_BETWEEN(name, lo, hi, fn) const struct { int lo_, hi_; fun_var_t f; } name = {lo, hi, fn}
#define MP_ROM_QSTR(x) ((const void *)0)
#define MP_ROM_PTR(p) ((const void *)(p))
#define MP_DEFINE_CONST_DICT(name, table) const mp_obj_dict_t name = {sizeof(table)}
#define MP_DEFINE_CONST_OBJ_TYPE(name, ...) const mp_obj_type_t name = {0}
#define MP_REGISTER_MODULE(a, b)
extern const mp_obj_type_t mp_type_module;
void mp_arg_check_num(size_t n_args, size_t n_kw, size_t lo, size_t hi, int kw);
#define mp_obj_malloc(t, type) ((t *)0)
#define MP_OBJ_FROM_PTR(p) ((mp_obj_t)(p))
