/* Cortex-M vector table for QEMU's mps2-an386 (Cortex-M4): 16 entries at address 0, initial SP at the top
 * of the 4 MiB RAM at 0x20000000, reset into newlib's _start (rdimon crt0: semihosting argv, .bss, main).
 * A fault reports itself over semihosting and exits with status 70, so a wild kernel fails the test run
 * instead of hanging QEMU. */
#include <stdint.h>

extern void _start(void);
extern void _exit(int);

static void fault(void)
{
    static const char msg[] = "cortexm harness: CPU fault\n";
    register int op __asm__("r0") = 0x04; /* SYS_WRITE0 */
    register const char *arg __asm__("r1") = msg;
    __asm__ volatile("bkpt 0xab" : "+r"(op) : "r"(arg) : "memory");
    _exit(70);
}

__attribute__((section(".vectors"), used)) void (*const ts_vectors[16])(void) = {
    (void (*)(void))0x20400000u, /* initial stack pointer */
    _start,                      /* reset */
    fault, fault, fault, fault, fault, /* NMI, HardFault, MemManage, BusFault, UsageFault */
    0, 0, 0, 0,
    fault,                       /* SVCall */
    fault, 0,
    fault,                       /* PendSV */
    fault,                       /* SysTick */
};
