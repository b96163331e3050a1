#!/usr/bin/env python3
"""check_isa.py — find instructions beyond baseline x86-64 outside the dispatched clones.

The portable build (make, without NATIVE=1) compiles everything for -march=x86-64 except the
hot CPU kernels marked GR_HOT (src/engine/gr_ops_cpu.h), which GCC also compiles as
FUNCTION.arch_x86_64_v3 and FUNCTION.arch_x86_64_v4 clones that only run where the loader's
CPU check chose them. This disassembles each file given (objdump -d) and fails if any other
function holds an instruction an x86-64 (SSE2) CPU lacks: any VEX/EVEX instruction (AT&T
mnemonics starting with v, ymm/zmm/mask registers), SSE3/SSSE3/SSE4, POPCNT, LZCNT/TZCNT,
BMI1/2, MOVBE, ADX, AES, PCLMUL, SHA, CRC32, RDRAND/RDSEED. libgcc's CPU detection
(__cpu_indicator_init and its helpers) is allowed: it runs cpuid/xgetbv to decide.

    check_isa.py FILE...     exit 0 clean, 1 with the offending functions listed
    check_isa.py --self-test checks that the scanner flags what it should (a -march=native
                             object and a clone) and passes a baseline one
"""
import re
import subprocess
import sys
import tempfile
import os

CLONE = re.compile(r"\.arch_x86_64_v[34](\.|$)")
ALLOWED_FUNCS = re.compile(r"^(__cpu_indicator_init|get_available_features|get_intel_cpu|"
                           r"get_amd_cpu|get_zhaoxin_cpu|__get_cpuid_count|__cpu_cpuid)")
NON_BASELINE = set("""
addsubpd addsubps haddpd haddps hsubpd hsubps lddqu movddup movshdup movsldup monitor mwait
fisttp fisttps fisttpl fisttpll
pabsb pabsw pabsd palignr phaddw phaddd phaddsw phsubw phsubd phsubsw pmaddubsw pmulhrsw
pshufb psignb psignw psignd
blendpd blendps blendvpd blendvps dppd dpps extractps insertps movntdqa mpsadbw packusdw
pblendvb pblendw pcmpeqq pextrb pextrd pextrq pinsrb pinsrd pinsrq phminposuw pmaxsb pmaxsd
pmaxud pmaxuw pminsb pminsd pminud pminuw pmovsxbw pmovsxbd pmovsxbq pmovsxwd pmovsxwq
pmovsxdq pmovzxbw pmovzxbd pmovzxbq pmovzxwd pmovzxwq pmovzxdq pmuldq pmulld ptest roundpd
roundps roundsd roundss
pcmpestri pcmpestrm pcmpistri pcmpistrm pcmpgtq crc32 crc32b crc32w crc32l crc32q
popcnt popcntw popcntl popcntq lzcnt lzcntw lzcntl lzcntq tzcnt tzcntw tzcntl tzcntq
andn andnl andnq bextr bextrl bextrq blsi blsil blsiq blsmsk blsmskl blsmskq blsr blsrl blsrq
bzhi bzhil bzhiq mulx mulxl mulxq pdep pdepl pdepq pext pextl pextq rorx rorxl rorxq sarx
sarxl sarxq shlx shlxl shlxq shrx shrxl shrxq
movbe movbew movbel movbeq adcx adcxl adcxq adox adoxl adoxq
aesenc aesenclast aesdec aesdeclast aesimc aeskeygenassist pclmulqdq pclmullqlqdq
sha1rnds4 sha1nexte sha1msg1 sha1msg2 sha256rnds2 sha256msg1 sha256msg2
rdrand rdseed xgetbv
""".split())
# mnemonics starting with "v" that an SSE2 machine has (none in practice): verr / verw
V_BASELINE = {"verr", "verw"}
WIDE_REG = re.compile(r"%(ymm|zmm)\d+|%k[0-7]\b")
FUNC = re.compile(r"^[0-9a-f]+ <(.+)>:$")
INSN = re.compile(r"^\s+[0-9a-f]+:\s+(?:[0-9a-f]{2} )*\s*([a-z][a-z0-9.]*)\s*(.*)$")


def non_baseline(mnemonic, operands):
    """Why an instruction is beyond x86-64 (SSE2), or None."""
    m = mnemonic.split(".")[0]
    if m.startswith("v") and m not in V_BASELINE:
        return "AVX"
    if m.startswith("k") and re.match(r"^k(and|or|xor|xnor|not|mov|shift|test|unpck|add)", m):
        return "AVX-512 mask"
    if m in NON_BASELINE:
        return m
    if WIDE_REG.search(operands):
        return "wide register"
    return None


def scan(path, exempt_clones=True):
    """{function: [(mnemonic, why), ...]} of non-baseline instructions (outside clones)."""
    out = subprocess.run(["objdump", "-d", "--no-show-raw-insn", path], capture_output=True,
                         text=True, check=True).stdout
    bad, fn, n_funcs, n_clones = {}, None, 0, 0
    for line in out.splitlines():
        f = FUNC.match(line)
        if f:
            fn = f.group(1)
            n_funcs += 1
            n_clones += bool(CLONE.search(fn))
            continue
        if fn is None or (exempt_clones and CLONE.search(fn)) or ALLOWED_FUNCS.match(fn):
            continue
        i = INSN.match(line)
        if not i:
            continue
        why = non_baseline(i.group(1), i.group(2))
        if why:
            bad.setdefault(fn, []).append((i.group(1), why))
    return bad, n_funcs, n_clones


def report(path):
    """Print the scan of one file; True when clean."""
    bad, n_funcs, n_clones = scan(path)
    if not bad:
        print(f"ok   {path}: {n_funcs} functions, {n_clones} of them x86-64-v3/v4 clones; "
              f"no instruction beyond x86-64 outside the clones")
        return True
    print(f"FAIL {path}: {len(bad)} functions outside the clones use instructions beyond x86-64:")
    for fn, insns in sorted(bad.items())[:40]:
        kinds = sorted({f"{m} ({w})" for m, w in insns})
        print(f"     {fn}: {len(insns)} instructions, e.g. {', '.join(kinds[:4])}")
    return False


def self_test():
    """The scanner must flag native code and pass baseline code; clones are exempt."""
    src = ("#include <stddef.h>\n"
           "void axpy(float *restrict y, const float *restrict x, float a, size_t n)\n"
           "{ for (size_t i = 0; i < n; i++) y[i] += a * x[i]; }\n"
           "__attribute__((target_clones(\"arch=x86-64-v4\", \"default\")))\n"
           "void axpy2(float *restrict y, const float *restrict x, float a, size_t n)\n"
           "{ for (size_t i = 0; i < n; i++) y[i] += a * x[i]; }\n")
    ok = True
    with tempfile.TemporaryDirectory() as d:
        c = os.path.join(d, "t.c")
        open(c, "w").write(src)
        for march, want_clean in (("-march=x86-64", True), ("-march=x86-64-v3", False)):
            o = os.path.join(d, "t.o")
            subprocess.run(["gcc", "-O3", march, "-c", c, "-o", o], check=True)
            bad, _, n_clones = scan(o)
            every, _, _ = scan(o, exempt_clones=False)
            clean = not bad
            # the v4 clone does hold AVX-512 (so exempting it matters) and is never flagged
            good = (clean == want_clean and n_clones == 1 and
                    not any(CLONE.search(f) for f in bad) and
                    any(CLONE.search(f) for f in every) and
                    (want_clean or "axpy" in bad))
            print(f"{'ok' if good else 'FAIL'}   self-test {march}: "
                  f"{'clean' if clean else 'flagged ' + ', '.join(sorted(bad))}")
            ok &= good
    return ok


def main():
    if sys.argv[1:] == ["--self-test"]:
        return 0 if self_test() else 1
    if not sys.argv[1:]:
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        return 2
    ok = True
    for p in sys.argv[1:]:
        ok &= report(p)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
