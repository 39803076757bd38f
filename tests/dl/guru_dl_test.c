/* A tiny shared library for the dlopen test (tests/tests/stress_lifecycle.rs):
 * a thread parks inside guru_dl_test_loop, which calls back into the fixture
 * until told to stop. Built by tests/build.rs with the system C compiler. */
#include <stdint.h>

__attribute__((noinline)) int guru_dl_test_inner(int (*keep_going)(void)) {
    volatile int calls = 0;
    while (keep_going()) {
        calls++;
    }
    return calls;
}

__attribute__((noinline)) int guru_dl_test_loop(int (*keep_going)(void)) {
    int n = guru_dl_test_inner(keep_going);
    __asm__ volatile("" ::: "memory"); /* no tail call: keep this frame */
    return n + 1;
}
