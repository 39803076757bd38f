/* A tiny shared library for the dlopen test (tests/tests/stress_lifecycle.rs):
 * a thread parks inside guru_dl_test_loop, which calls back into the fixture
 * until told to stop. Built by tests/build.rs with the system C compiler.
 *
 * Between guru_dl_test_loop and guru_dl_test_inner sits a trampoline that,
 * on x86_64, is hand-written assembly without unwind information (like
 * musl's system-call wrappers): it saves registers and keeps locals, so its
 * caller is neither at the stack pointer nor reachable through frame
 * pointers. The engine finds it by scanning the stack. */
#include <stdint.h>

typedef int (*keep_going_fn)(void);
typedef int (*inner_fn)(keep_going_fn);

int guru_dl_test_trampoline(inner_fn inner, keep_going_fn keep_going);

#if defined(__x86_64__)
__asm__(
    ".text\n"
    ".globl guru_dl_test_trampoline\n"
    ".type guru_dl_test_trampoline,@function\n"
    "guru_dl_test_trampoline:\n"
    "    push %rbx\n"
    "    push %r12\n"
    "    sub $40, %rsp\n"          /* locals; keeps rsp 16-byte aligned */
    "    movq $0, 0(%rsp)\n"
    "    movq $0, 8(%rsp)\n"
    "    movq $0, 16(%rsp)\n"
    "    movq $0, 24(%rsp)\n"
    "    movq $0, 32(%rsp)\n"
    "    mov %rdi, %rbx\n"
    "    mov %rsi, %rdi\n"
    "    xor %r12d, %r12d\n"
    "    call *%rbx\n"
    "    add $40, %rsp\n"
    "    pop %r12\n"
    "    pop %rbx\n"
    "    ret\n"
    ".size guru_dl_test_trampoline, .-guru_dl_test_trampoline\n");
#else
__attribute__((noinline)) int guru_dl_test_trampoline(inner_fn inner, keep_going_fn keep_going) {
    int n = inner(keep_going);
    __asm__ volatile("" ::: "memory"); /* no tail call: keep this frame */
    return n;
}
#endif

__attribute__((noinline)) int guru_dl_test_inner(keep_going_fn keep_going) {
    volatile int calls = 0;
    while (keep_going()) {
        calls++;
    }
    return calls;
}

__attribute__((noinline)) int guru_dl_test_loop(keep_going_fn keep_going) {
    int n = guru_dl_test_trampoline(guru_dl_test_inner, keep_going);
    __asm__ volatile("" ::: "memory"); /* no tail call: keep this frame */
    return n + 1;
}
