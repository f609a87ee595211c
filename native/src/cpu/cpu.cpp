// Instruction-set detection (CPUID + XGETBV) and the DEEPMLA_ISA cap. Compiled with
// baseline flags: nothing here may use an instruction it is about to test for.
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "deepmla/kernels.hpp"

#if defined(_MSC_VER)
#include <intrin.h>
#include <immintrin.h>
#elif defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace deepmla {

namespace {

struct CpuidRegs {
  uint32_t eax = 0, ebx = 0, ecx = 0, edx = 0;
};

CpuidRegs cpuid(uint32_t leaf, uint32_t subleaf) {
  CpuidRegs r;
#if defined(_MSC_VER)
  int regs[4];
  __cpuidex(regs, int(leaf), int(subleaf));
  r = {uint32_t(regs[0]), uint32_t(regs[1]), uint32_t(regs[2]), uint32_t(regs[3])};
#elif defined(__x86_64__) || defined(__i386__)
  __cpuid_count(leaf, subleaf, r.eax, r.ebx, r.ecx, r.edx);
#endif
  return r;
}

// XCR0: which register states the OS saves on context switch. Only valid when CPUID says
// OSXSAVE; written as inline asm so this file needs no -mxsave.
uint64_t xgetbv0() {
#if defined(_MSC_VER)
  return _xgetbv(0);
#elif defined(__x86_64__) || defined(__i386__)
  uint32_t lo, hi;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (uint64_t(hi) << 32) | lo;
#else
  return 0;
#endif
}

bool bit(uint32_t reg, int n) { return (reg >> n) & 1u; }

// Linux hands out the 8 KiB of tile data state per process, on request (kernel 5.16+):
// without it the first tile instruction faults. The request fails where a thread's
// sigaltstack is too small for the larger signal frame, or on older kernels; then the
// CPU's AMX stays unused.
bool request_tile_data() {
#if defined(__linux__) && defined(SYS_arch_prctl)
  constexpr int kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
  return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
#else
  return false;
#endif
}

Isa detect() {
#if defined(DEEPMLA_EMULATE_AVX512)
  return Isa::AVX512_BF16;  // a test build whose AVX512 files run under SIMDe (CMakeLists.txt)
#elif !(defined(__x86_64__) || defined(__i386__) || defined(_M_X64))
  return Isa::SCALAR;
#else
  const uint32_t max_leaf = cpuid(0, 0).eax;
  if (max_leaf < 7) return Isa::SCALAR;
  const CpuidRegs l1 = cpuid(1, 0);
  const CpuidRegs l7 = cpuid(7, 0);
  // Leaf 1 ECX: 12 FMA, 27 OSXSAVE, 28 AVX, 29 F16C.
  if (!bit(l1.ecx, 27)) return Isa::SCALAR;
  const uint64_t xcr0 = xgetbv0();
  const bool ymm_state = (xcr0 & 0x6) == 0x6;    // XMM (bit 1) + YMM upper halves (bit 2)
  const bool zmm_state = (xcr0 & 0xe6) == 0xe6;  // + opmask (5), ZMM_Hi256 (6), Hi16_ZMM (7)
  // The _avx2 files are built with -mavx2 -mfma -mf16c -mbmi2 (CMakeLists.txt), so the
  // AVX2 level needs all four. Leaf 7 EBX: 5 AVX2, 8 BMI2.
  const bool avx2 = ymm_state && bit(l1.ecx, 28) && bit(l1.ecx, 12) && bit(l1.ecx, 29) &&
                    bit(l7.ebx, 5) && bit(l7.ebx, 8);
  if (!avx2) return Isa::SCALAR;
  // Leaf 7 EBX: 16 AVX512F, 17 DQ, 30 BW, 31 VL (the _avx512 flag set).
  const bool avx512 = zmm_state && bit(l7.ebx, 16) && bit(l7.ebx, 17) && bit(l7.ebx, 30) && bit(l7.ebx, 31);
  if (!avx512) return Isa::AVX2;
  // Leaf 7 ECX bit 11: AVX512_VNNI.
  if (!bit(l7.ecx, 11)) return Isa::AVX512;
  // Leaf 7 subleaf 1 EAX bit 5: AVX512_BF16 (its files are also built with -mavx512vnni).
  if (!(l7.eax >= 1 && bit(cpuid(7, 1).eax, 5))) return Isa::AVX512_VNNI;
  // Leaf 7 EDX: 22 AMX-BF16, 24 AMX-TILE, 25 AMX-INT8; XCR0 17 XTILECFG, 18 XTILEDATA.
  const bool amx = bit(l7.edx, 22) && bit(l7.edx, 24) && bit(l7.edx, 25) && (xcr0 & 0x60000) == 0x60000;
  if (amx && request_tile_data()) return Isa::AMX;
  return Isa::AVX512_BF16;
#endif
}

constexpr int kNoCap = -1;
std::atomic<int> g_cap{kNoCap};

// DEEPMLA_ISA, read once. An unknown value means no cap: a typo must not silently
// select a slower path than the user meant, nor crash the process.
int env_cap() {
  static const int cap = [] {
    const char* v = std::getenv("DEEPMLA_ISA");
    Isa isa;
    return v && isa_from_name(v, &isa) ? int(isa) : kNoCap;
  }();
  return cap;
}

}  // namespace

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::SCALAR: return "scalar";
    case Isa::AVX2: return "avx2";
    case Isa::AVX512: return "avx512";
    case Isa::AVX512_VNNI: return "avx512vnni";
    case Isa::AVX512_BF16: return "avx512bf16";
    case Isa::AMX: return "amx";
  }
  return "unknown";
}

bool isa_from_name(const char* name, Isa* out) {
  for (int i = 0; i <= int(Isa::AMX); ++i) {
    if (std::strcmp(name, isa_name(Isa(i))) == 0) {
      *out = Isa(i);
      return true;
    }
  }
  return false;
}

Isa detected_isa() {
  static const Isa isa = detect();
  return isa;
}

Isa active_isa() {
  int level = int(detected_isa());
  const int env = env_cap();
  if (env != kNoCap && env < level) level = env;
  const int cap = g_cap.load(std::memory_order_relaxed);
  if (cap != kNoCap && cap < level) level = cap;
  return Isa(level);
}

void set_isa_cap(Isa cap) { g_cap.store(int(cap), std::memory_order_relaxed); }
void clear_isa_cap() { g_cap.store(kNoCap, std::memory_order_relaxed); }

}  // namespace deepmla
