/* CPU feature detection from CPUID, with the OS's consent for the wide registers
 * read from XCR0 (a CPU may support AVX-512 that the kernel does not save). */
#include <stdio.h>
#include <string.h>
#include <threads.h>

#include "attn/core.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>

static unsigned long long read_xcr0(void)
{
    unsigned int eax, edx;
    __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
    return ((unsigned long long)edx << 32) | eax;
}

static attn_cpu_features detected;
static once_flag detect_once = ONCE_FLAG_INIT;

static void detect(void)
{
    attn_cpu_features f;
    memset(&f, 0, sizeof f);
    unsigned int eax, ebx, ecx, edx;
    if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return;
    bool osxsave = (ecx >> 27) & 1;
    unsigned long long xcr0 = osxsave ? read_xcr0() : 0;
    bool ymm_saved = (xcr0 & 0x6) == 0x6;    /* SSE and AVX state */
    bool zmm_saved = (xcr0 & 0xE6) == 0xE6;  /* plus opmask and both ZMM halves */

    f.sse42 = (ecx >> 20) & 1;
    f.avx = ymm_saved && ((ecx >> 28) & 1);
    f.fma = f.avx && ((ecx >> 12) & 1);
    f.f16c = f.avx && ((ecx >> 29) & 1);

    if (__get_cpuid_max(0, NULL) >= 7) {
        __cpuid_count(7, 0, eax, ebx, ecx, edx);
        f.avx2 = f.avx && ((ebx >> 5) & 1);
        f.avx512f = zmm_saved && ((ebx >> 16) & 1);
        f.avx512dq = f.avx512f && ((ebx >> 17) & 1);
        f.avx512bw = f.avx512f && ((ebx >> 30) & 1);
        f.avx512vl = f.avx512f && ((ebx >> 31) & 1);
        __cpuid_count(7, 1, eax, ebx, ecx, edx);
        f.avx512bf16 = f.avx512f && ((eax >> 5) & 1);
    }
    detected = f;
}

/* CPUID can trap to the hypervisor in a virtual machine, costing microseconds, and
 * the kernels ask on every call: the answer is found once. */
attn_cpu_features attn_cpu_detect(void)
{
    call_once(&detect_once, detect);
    return detected;
}

#else

attn_cpu_features attn_cpu_detect(void)
{
    attn_cpu_features f;
    memset(&f, 0, sizeof f);
    return f;
}

#endif

void attn_cpu_describe(const attn_cpu_features *features, char *buf, size_t size)
{
    const struct {
        bool present;
        const char *name;
    } list[] = {
        {features->sse42, "sse4.2"},       {features->avx, "avx"},
        {features->avx2, "avx2"},          {features->fma, "fma"},
        {features->f16c, "f16c"},          {features->avx512f, "avx512f"},
        {features->avx512dq, "avx512dq"},  {features->avx512bw, "avx512bw"},
        {features->avx512vl, "avx512vl"},  {features->avx512bf16, "avx512bf16"},
    };
    if (size == 0) return;
    buf[0] = '\0';
    size_t used = 0;
    for (size_t i = 0; i < sizeof list / sizeof list[0]; i++) {
        if (!list[i].present) continue;
        int n = snprintf(buf + used, size - used, "%s%s", used ? " " : "", list[i].name);
        if (n < 0 || (size_t)n >= size - used) break;
        used += (size_t)n;
    }
}
