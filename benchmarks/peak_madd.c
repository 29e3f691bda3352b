/* Register-only throughput of AVX2 vpmaddwd (int16 pairs -> int32) vs float32 FMA on one core:
 * 12 (resp. 10) independent accumulators, no memory traffic. Built and run by
 * bench_native_conv.py. Prints G multiply-adds per second for both. */
#include <immintrin.h>
#include <stdio.h>
#include <time.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

int main(void) {
    const long n = 100000000;
    /* accumulators as separate variables: an array here ends up in memory at -O2 */
    __m256i a = _mm256_set1_epi32(3), b = _mm256_set1_epi32(5);
    __m256i c0 = _mm256_setzero_si256(), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0, c6 = c0, c7 = c0, c8 = c0,
            c9 = c0, c10 = c0, c11 = c0;
    double t0 = now();
    for (long i = 0; i < n; i++) {
        __asm__ volatile("" : "+x"(a));
#define M(x) x = _mm256_add_epi32(x, _mm256_madd_epi16(a, b));
        M(c0) M(c1) M(c2) M(c3) M(c4) M(c5) M(c6) M(c7) M(c8) M(c9) M(c10) M(c11)
    }
    double ti = now() - t0;
    __m256 fa = _mm256_set1_ps(1.0001f), fb = _mm256_set1_ps(0.9999f);
    __m256 f0 = _mm256_setzero_ps(), f1 = f0, f2 = f0, f3 = f0, f4 = f0, f5 = f0, f6 = f0, f7 = f0, f8 = f0, f9 = f0;
    t0 = now();
    for (long i = 0; i < n; i++) {
        __asm__ volatile("" : "+x"(fa));
#define F(x) x = _mm256_fmadd_ps(fa, fb, x);
        F(f0) F(f1) F(f2) F(f3) F(f4) F(f5) F(f6) F(f7) F(f8) F(f9)
    }
    double tf = now() - t0;
    __m256i si = _mm256_add_epi32(_mm256_add_epi32(_mm256_add_epi32(c0, c1), _mm256_add_epi32(c2, c3)),
                                  _mm256_add_epi32(_mm256_add_epi32(c4, c5), _mm256_add_epi32(c6, c7)));
    si = _mm256_add_epi32(si, _mm256_add_epi32(_mm256_add_epi32(c8, c9), _mm256_add_epi32(c10, c11)));
    __m256 sf = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(f0, f1), _mm256_add_ps(f2, f3)),
                              _mm256_add_ps(_mm256_add_ps(f4, f5), _mm256_add_ps(f6, f7)));
    sf = _mm256_add_ps(sf, _mm256_add_ps(f8, f9));
    float o[8];
    _mm256_storeu_ps(o, sf);
    printf("vpmaddwd %.1f G multiply-adds/s, float32 FMA %.1f G multiply-adds/s (checksums %d %g)\n",
           n * 12.0 * 16 / ti / 1e9, n * 10.0 * 8 / tf / 1e9, _mm256_extract_epi32(si, 0), o[0]);
    return 0;
}
