/* CPUID as an AVX2-only CPU answers it, for a library whose CPUID instructions were rewritten as UD2.
 *
 * Loaded with LD_PRELOAD by benchmarks/onnx_runtime_on_avx2.py. ONNX Runtime picks its kernels from CPUID and has
 * no switch to pick others; in a copy of its library every CPUID (0F A2) is rewritten as UD2 (0F 0B), which raises
 * SIGILL. This handler runs the real CPUID with the same leaf and subleaf, clears the AVX-512, VNNI (AVX-512 and
 * AVX-VNNI), bfloat16 and AMX feature bits, and resumes after the instruction. The kernels then chosen run natively.
 * A SIGILL anywhere else (not a UD2 in that library) gets the default action: the process dies as it would have.
 */
#define _GNU_SOURCE
#include <cpuid.h>
#include <dlfcn.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <ucontext.h>

#define BIT(n) (1u << (n))

static int rewritten_library(const void *address) {
    Dl_info info;
    return dladdr(address, &info) && info.dli_fname && strstr(info.dli_fname, "onnxruntime_pybind11_state");
}

static void clear_features(unsigned leaf, unsigned subleaf, unsigned *a, unsigned *b, unsigned *c, unsigned *d) {
    if (leaf == 7 && subleaf == 0) {
        /* AVX512F, DQ, IFMA, PF, ER, CD, BW, VL */
        *b &= ~(BIT(16) | BIT(17) | BIT(21) | BIT(26) | BIT(27) | BIT(28) | BIT(30) | BIT(31));
        /* AVX512_VBMI, VBMI2, VNNI, BITALG, VPOPCNTDQ */
        *c &= ~(BIT(1) | BIT(6) | BIT(11) | BIT(12) | BIT(14));
        /* AVX512_4VNNIW, 4FMAPS, VP2INTERSECT, AMX_BF16, AVX512_FP16, AMX_TILE, AMX_INT8 */
        *d &= ~(BIT(2) | BIT(3) | BIT(8) | BIT(22) | BIT(23) | BIT(24) | BIT(25));
    } else if (leaf == 7 && subleaf == 1) {
        *a &= ~(BIT(4) | BIT(5) | BIT(23)); /* AVX_VNNI, AVX512_BF16, AVX_IFMA */
        *d &= ~(BIT(4) | BIT(5) | BIT(10)); /* AVX_VNNI_INT8, AVX_NE_CONVERT, AVX_VNNI_INT16 */
    }
}

static void emulate_cpuid(int signal_number, siginfo_t *info, void *context) {
    (void)info;
    greg_t *registers = ((ucontext_t *)context)->uc_mcontext.gregs;
    const unsigned char *instruction = (const unsigned char *)registers[REG_RIP];
    if (instruction[0] != 0x0f || instruction[1] != 0x0b || !rewritten_library(instruction)) {
        signal(signal_number, SIG_DFL); /* returning re-executes the instruction: a genuine SIGILL */
        return;
    }
    unsigned leaf = (unsigned)registers[REG_RAX], subleaf = (unsigned)registers[REG_RCX], a, b, c, d;
    __cpuid_count(leaf, subleaf, a, b, c, d);
    clear_features(leaf, subleaf, &a, &b, &c, &d);
    registers[REG_RAX] = a;
    registers[REG_RBX] = b;
    registers[REG_RCX] = c;
    registers[REG_RDX] = d;
    registers[REG_RIP] += 2;
}

__attribute__((constructor)) static void install(void) {
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_sigaction = emulate_cpuid;
    action.sa_flags = SA_SIGINFO;
    sigaction(SIGILL, &action, 0);
}
