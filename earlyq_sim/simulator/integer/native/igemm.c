/* Exact integer conv/linear for x86-64 AVX2: int16 operands, int32 accumulation with
 * vpmaddwd (16 multiply-adds per instruction; AVX2 CPUs without VNNI have no faster exact
 * int8 path), and the fixed-point output rescale fused into the GEMM epilogue.
 *
 * Semantics (identical to earlyq_sim.simulator.fused_kernels, which the tests compare):
 *   codes  = clamp(rint(x / s), lo, hi)                 float32 division, round half to even
 *                                                       (NaN -> lo: an integer code has no NaN)
 *   acc    = sum_k a_k w_k + bias                       exact: the caller proves |acc| < 2^31
 *                                                       for every partial sum (static bound)
 *   check  : acc outside [alo, ahi] is counted and clamped (min/max reported)
 *   code_o = clamp((acc * m0 + rnd) >> shift, qmin, qmax)   int64, arithmetic shift
 *   out    = (float)code_o * s_out                      one float32 rounding
 * Compiled without -ffast-math and with -ffp-contract=off so float arithmetic is IEEE as in
 * the NumPy/numba reference.
 */
#include <immintrin.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#define MR 6    /* output pixels (rows) per tile */
#define NR 16   /* output channels per tile: two 8-lane int32 vectors */

static inline float q1(float v, float s, float lo, float hi) {
    float r = nearbyintf(v / s);
    return !(r >= lo) ? lo : (r > hi ? hi : r);     /* NaN -> lo, as vmaxps does below */
}

/* 8 codes clamp(rint(x / s), lo, hi) as int32 lanes (vdivps and vroundps are IEEE exact). */
static inline __m256i q8(const float *x, __m256 s, __m256 lo, __m256 hi) {
    __m256 r = _mm256_round_ps(_mm256_div_ps(_mm256_loadu_ps(x), s), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    return _mm256_cvttps_epi32(_mm256_min_ps(_mm256_max_ps(r, lo), hi));
}

/* x: float32 (N, C, H, W) with element strides; out: int16 (N, H+2ph, W+2pw, Cp), fully
 * written (zero border and zero channels c >= C). Two channels of one pixel form one int32
 * (low half = even channel), which is what eq_conv_i16 broadcasts. dst: scratch of H*W int64. */
void eq_quantize_nhwc(const float *x, int64_t sn, int64_t sc, int64_t sh, int64_t sw,
                      int N, int C, int H, int W, int ph, int pw, int Cp,
                      float s, float lo, float hi, int16_t *out, int64_t *dst, int nthreads) {
    const int Hp = H + 2 * ph, Wp = W + 2 * pw, KP = Cp / 2;
    for (int h = 0; h < H; h++)      /* int32 offset of pixel (h, w) in one padded sample */
        for (int w = 0; w < W; w++) dst[(int64_t)h * W + w] = ((int64_t)(ph + h) * Wp + pw + w) * KP;
    const int64_t row = (int64_t)Wp * Cp;
    const __m256 vs = _mm256_set1_ps(s), vlo = _mm256_set1_ps(lo), vhi = _mm256_set1_ps(hi);
    const __m256i m16 = _mm256_set1_epi32(0xFFFF);
    #pragma omp parallel for num_threads(nthreads) schedule(static)
    for (int n = 0; n < N; n++) {
        int16_t *on = out + (int64_t)n * Hp * row;
        memset(on, 0, sizeof(int16_t) * ph * row);
        memset(on + (int64_t)(ph + H) * row, 0, sizeof(int16_t) * ph * row);
        for (int h = 0; h < H; h++) {
            int16_t *orow = on + (int64_t)(ph + h) * row;
            memset(orow, 0, sizeof(int16_t) * pw * Cp);
            memset(orow + (int64_t)(pw + W) * Cp, 0, sizeof(int16_t) * pw * Cp);
        }
        if (sw != 1) {              /* general strides (channels-last input): scalar */
            for (int h = 0; h < H; h++) {
                const float *xh = x + n * sn + h * sh;
                int16_t *o = on + (int64_t)(ph + h) * row + (int64_t)pw * Cp;
                for (int w = 0; w < W; w++) {
                    for (int c = 0; c < C; c++) o[(int64_t)w * Cp + c] = (int16_t)q1(xh[c * sc + w * sw], s, lo, hi);
                    for (int c = C; c < Cp; c++) o[(int64_t)w * Cp + c] = 0;
                }
            }
            continue;
        }
        /* Blocks of 8 channel pairs x 8 pixels: 16 sequential read streams (one per channel
         * plane), an 8x8 transpose of the int32 pair words in registers, then one 32-byte store
         * per pixel (4-byte scattered stores thrash L1 once a sample's codes outgrow it). With
         * sh == W the plane is flat and a block may span rows (dst holds each pixel's offset). */
        const int flat = sh == W;
        int32_t *o32 = (int32_t *)on;
        int k0 = 0;
        if (flat) {
            const int64_t HW = (int64_t)H * W;
            const float *xn = x + n * sn;
            for (; 2 * (k0 + 8) <= C; k0 += 8) {
                int64_t i = 0;
                for (; i + 8 <= HW; i += 8) {
                    __m256i r[8];
                    for (int j = 0; j < 8; j++) {
                        const float *x0 = xn + (int64_t)(2 * (k0 + j)) * sc + i;
                        r[j] = _mm256_or_si256(_mm256_and_si256(q8(x0, vs, vlo, vhi), m16),
                                               _mm256_slli_epi32(q8(x0 + sc, vs, vlo, vhi), 16));
                    }
                    /* transpose: r[j] lane p = pair j of pixel p  ->  t[p] lane j */
                    __m256i a0 = _mm256_unpacklo_epi32(r[0], r[1]), a1 = _mm256_unpackhi_epi32(r[0], r[1]);
                    __m256i a2 = _mm256_unpacklo_epi32(r[2], r[3]), a3 = _mm256_unpackhi_epi32(r[2], r[3]);
                    __m256i a4 = _mm256_unpacklo_epi32(r[4], r[5]), a5 = _mm256_unpackhi_epi32(r[4], r[5]);
                    __m256i a6 = _mm256_unpacklo_epi32(r[6], r[7]), a7 = _mm256_unpackhi_epi32(r[6], r[7]);
                    __m256i b0 = _mm256_unpacklo_epi64(a0, a2), b1 = _mm256_unpackhi_epi64(a0, a2);
                    __m256i b2 = _mm256_unpacklo_epi64(a1, a3), b3 = _mm256_unpackhi_epi64(a1, a3);
                    __m256i b4 = _mm256_unpacklo_epi64(a4, a6), b5 = _mm256_unpackhi_epi64(a4, a6);
                    __m256i b6 = _mm256_unpacklo_epi64(a5, a7), b7 = _mm256_unpackhi_epi64(a5, a7);
                    __m256i t[8];
                    t[0] = _mm256_permute2x128_si256(b0, b4, 0x20); t[4] = _mm256_permute2x128_si256(b0, b4, 0x31);
                    t[1] = _mm256_permute2x128_si256(b1, b5, 0x20); t[5] = _mm256_permute2x128_si256(b1, b5, 0x31);
                    t[2] = _mm256_permute2x128_si256(b2, b6, 0x20); t[6] = _mm256_permute2x128_si256(b2, b6, 0x31);
                    t[3] = _mm256_permute2x128_si256(b3, b7, 0x20); t[7] = _mm256_permute2x128_si256(b3, b7, 0x31);
                    for (int p = 0; p < 8; p++) _mm256_storeu_si256((__m256i *)(o32 + dst[i + p] + k0), t[p]);
                }
                for (; i < HW; i++)
                    for (int j = 0; j < 8; j++) {
                        const float *x0 = xn + (int64_t)(2 * (k0 + j)) * sc;
                        uint32_t lo16 = (uint16_t)(int16_t)q1(x0[i], s, lo, hi);
                        uint32_t hi16 = (uint16_t)(int16_t)q1(x0[i + sc], s, lo, hi);
                        o32[dst[i] + k0 + j] = (int32_t)(lo16 | (hi16 << 16));
                    }
            }
        }
        /* remaining channel pairs (and non-flat inputs): one pair at a time */
        for (int k = k0; k < KP; k++) {
            for (int h = 0; h < (flat ? 1 : H); h++) {
                const float *x0 = x + n * sn + h * sh + (int64_t)(2 * k) * sc;
                const float *x1 = 2 * k + 1 < C ? x0 + sc : NULL;
                const int64_t len = flat ? (int64_t)H * W : W, d0 = flat ? 0 : (int64_t)h * W;
                int64_t i = 0;
                for (; i + 8 <= len; i += 8) {
                    __m256i v = _mm256_and_si256(q8(x0 + i, vs, vlo, vhi), m16);
                    if (x1) v = _mm256_or_si256(v, _mm256_slli_epi32(q8(x1 + i, vs, vlo, vhi), 16));
                    int32_t t[8];
                    _mm256_storeu_si256((__m256i *)t, v);
                    for (int j = 0; j < 8; j++) o32[dst[d0 + i + j] + k] = t[j];
                }
                for (; i < len; i++) {
                    uint32_t lo16 = (uint16_t)(int16_t)q1(x0[i], s, lo, hi);
                    uint32_t hi16 = x1 ? (uint16_t)(int16_t)q1(x1[i], s, lo, hi) : 0;
                    o32[dst[d0 + i] + k] = (int32_t)(lo16 | (hi16 << 16));
                }
            }
        }
    }
}

/* x: float32 rows (M, K), row stride ldx; out: int16 (M, Kp) with zero columns K..Kp-1. */
void eq_quantize_rows(const float *x, int64_t M, int K, int64_t ldx, int Kp, float s, float lo, float hi,
                      int16_t *out, int nthreads) {
    const __m256 vs = _mm256_set1_ps(s), vlo = _mm256_set1_ps(lo), vhi = _mm256_set1_ps(hi);
    #pragma omp parallel for num_threads(nthreads) schedule(static) if (M >= 256)
    for (int64_t m = 0; m < M; m++) {
        const float *xr = x + m * ldx;
        int16_t *o = out + m * Kp;
        int k = 0;
        for (; k + 16 <= K; k += 16) {
            __m256i a = q8(xr + k, vs, vlo, vhi), b = q8(xr + k + 8, vs, vlo, vhi);
            /* packs works per 128-bit lane: reorder 64-bit blocks back to 0..15 */
            __m256i p = _mm256_permute4x64_epi64(_mm256_packs_epi32(a, b), 0xD8);
            _mm256_storeu_si256((__m256i *)(o + k), p);
        }
        for (; k < K; k++) o[k] = (int16_t)q1(xr[k], s, lo, hi);
        for (; k < Kp; k++) o[k] = 0;
    }
}

/* Epilogue of one MR x NR tile: bias, accumulator check, fixed-point rescale, dequantize. */
static inline void tile_out(const int32_t acc[MR][NR], int mr, int co0, int Co, const int64_t *bias,
                            const int64_t *m0, const int64_t *shift, const int64_t *rnd,
                            int64_t qmin, int64_t qmax, float s_out, int check, int64_t alo, int64_t ahi,
                            float *out, const int64_t *ooff, int64_t out_sc, int64_t *st) {
    const int nc = Co - co0 < NR ? Co - co0 : NR;
    for (int j = 0; j < nc; j++) {
        const int co = co0 + j;
        const int64_t b = bias[co], m = m0[co], r = rnd[co];
        const int k = (int)shift[co];
        float *oc = out + co * out_sc;
        for (int i = 0; i < mr; i++) {
            int64_t v = (int64_t)acc[i][j] + b;
            if (check) {
                if (v < st[1]) st[1] = v;
                if (v > st[2]) st[2] = v;
                if (v < alo || v > ahi) { st[0]++; v = v < alo ? alo : ahi; }
            }
            int64_t t = (v * m + r) >> k;
            t = t < qmin ? qmin : (t > qmax ? qmax : t);
            oc[ooff[i]] = (float)t * s_out;
        }
    }
}

/* floor(p / 2^k) per 64-bit lane (AVX2 has no 64-bit arithmetic shift): ~((~p) >> k) for p < 0. */
static inline __m256i sra64(__m256i p, __m256i k) {
    const __m256i neg = _mm256_cmpgt_epi64(_mm256_setzero_si256(), p);
    return _mm256_xor_si256(_mm256_srlv_epi64(_mm256_xor_si256(p, neg), k), neg);
}

/* 4 channels: int32 sums -> clamp((v m0 + rnd) >> k, qmin, qmax) as int64 lanes. |v| < 2^31
 * (the caller's static bound, bias included), so the signed 32x32 -> 64 multiply is exact. */
static inline __m256i rescale4(__m128i a, const int64_t *b, const int64_t *m, const int64_t *r, const int64_t *k,
                               __m256i qmin, __m256i qmax) {
    __m256i v = _mm256_add_epi64(_mm256_cvtepi32_epi64(a), _mm256_loadu_si256((const __m256i *)b));
    __m256i t = _mm256_add_epi64(_mm256_mul_epi32(v, _mm256_loadu_si256((const __m256i *)m)),
                                 _mm256_loadu_si256((const __m256i *)r));
    t = sra64(t, _mm256_loadu_si256((const __m256i *)k));
    t = _mm256_blendv_epi8(t, qmin, _mm256_cmpgt_epi64(qmin, t));
    return _mm256_blendv_epi8(t, qmax, _mm256_cmpgt_epi64(t, qmax));
}

/* The unchecked epilogue, 8 channels per vector; per-channel arrays padded to a multiple of NR. */
static inline void tile_out_vec(const int32_t acc[MR][NR], int mr, int co0, int Co, const int64_t *bias,
                                const int64_t *m0, const int64_t *shift, const int64_t *rnd,
                                int64_t qmin, int64_t qmax, float s_out, float *out, const int64_t *ooff,
                                int64_t out_sc) {
    const int nc = Co - co0 < NR ? Co - co0 : NR;
    const __m256i vqmin = _mm256_set1_epi64x(qmin), vqmax = _mm256_set1_epi64x(qmax);
    const __m256i even = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);
    const __m256 vs = _mm256_set1_ps(s_out);
    float f[MR][NR];
    for (int i = 0; i < mr; i++) {
        for (int h = 0; h < NR; h += 8) {
            const __m256i a = _mm256_loadu_si256((const __m256i *)(acc[i] + h));
            const int c = co0 + h;
            __m256i lo = rescale4(_mm256_castsi256_si128(a), bias + c, m0 + c, rnd + c, shift + c, vqmin, vqmax);
            __m256i hi = rescale4(_mm256_extracti128_si256(a, 1), bias + c + 4, m0 + c + 4, rnd + c + 4,
                                  shift + c + 4, vqmin, vqmax);
            /* low 32 bits of each lane (the codes fit int32) -> 8 int32 in channel order */
            lo = _mm256_permutevar8x32_epi32(lo, even);
            hi = _mm256_permutevar8x32_epi32(hi, even);
            const __m256i t = _mm256_permute2x128_si256(lo, hi, 0x20);
            _mm256_storeu_ps(f[i] + h, _mm256_mul_ps(_mm256_cvtepi32_ps(t), vs));
        }
    }
    if (out_sc == 1) {                  /* channels innermost: one contiguous run per pixel */
        for (int i = 0; i < mr; i++) memcpy(out + ooff[i] + co0, f[i], sizeof(float) * nc);
    } else {                            /* NCHW: per channel, the tile's pixels are (mostly) adjacent */
        for (int j = 0; j < nc; j++) {
            float *oc = out + (int64_t)(co0 + j) * out_sc;
            for (int i = 0; i < mr; i++) oc[ooff[i]] = f[i][j];
        }
    }
}

/* xp: int16 (N, Hp, Wp, Cp) padded centered codes, Cp even. wpk: packed weight codes
 * [ceil(Co/16)][R*S][Cp/2][16][2]. Output pixel (n, ho, wo) reads xp from row ho*sy, column
 * wo*sx; its value for channel co goes to out[n*o_n + ho*o_h + wo*o_w + co*o_c].
 * A linear layer is N rows with Hp = Wp = R = S = Ho = Wo = 1. Computes output pixels
 * [p_begin, p_end) of the flattened (n, ho, wo); stats: (n_clamped, min, max). bias, m0,
 * shift, rnd: int64 per output channel, padded with zeros (shift: ones) to a multiple of NR. */
void eq_conv_i16(const int16_t *xp, int N, int Hp, int Wp, int Cp,
                 const int16_t *wpk, int Co, int R, int S, int sy, int sx, int Ho, int Wo,
                 const int64_t *bias, const int64_t *m0, const int64_t *shift, const int64_t *rnd,
                 int64_t qmin, int64_t qmax, float s_out, int check, int64_t alo, int64_t ahi,
                 float *out, int64_t o_n, int64_t o_c, int64_t o_h, int64_t o_w,
                 int64_t p_begin, int64_t p_end, int64_t *stats, int nthreads) {
    const int KP = Cp / 2, T = R * S, NB = (Co + NR - 1) / NR;
    const int64_t HWo = (int64_t)Ho * Wo, nblk = (p_end - p_begin + MR - 1) / MR;
    const int KR = S * KP;      /* channel pairs per kernel row */
    int64_t toff[R];
    for (int t = 0; t < R; t++) toff[t] = (int64_t)t * Wp * Cp / 2;   /* in int32 units */
    int64_t nbad = 0, gmin = INT64_MAX, gmax = INT64_MIN;
    /* rows are split across threads (torch's OpenMP pool: the library binds to the libgomp
     * that torch has already loaded, so no second pool competes for the cores) */
    #pragma omp parallel num_threads(nthreads) if (nblk >= 16)
    {
    int64_t st[3] = {0, INT64_MAX, INT64_MIN};
    #pragma omp for schedule(static)
    for (int64_t blk = 0; blk < nblk; blk++) {
        const int64_t p0 = p_begin + blk * MR;
        const int mr = p_end - p0 < MR ? (int)(p_end - p0) : MR;
        const int32_t *base[MR];
        int64_t ooff[MR];
        /* divide once per block, then step (64-bit divisions per pixel cost more than a 1x1
         * conv's whole tile) */
        int64_t n = p0 / HWo, ho = (p0 % HWo) / Wo, wo = p0 % Wo;
        for (int i = 0; i < MR; i++) {
            if (i >= mr) {              /* rows past the end repeat row 0 and are not stored */
                base[i] = base[0];
                ooff[i] = ooff[0];
                continue;
            }
            base[i] = (const int32_t *)(xp + ((n * Hp + ho * sy) * Wp + wo * sx) * Cp);
            ooff[i] = n * o_n + ho * o_h + wo * o_w;
            if (++wo == Wo) {
                wo = 0;
                if (++ho == Ho) { ho = 0; n++; }
            }
        }
        for (int jb = 0; jb < NB; jb++) {
            const int16_t *bp = wpk + (int64_t)jb * T * KP * 2 * NR;
            __m256i c00 = _mm256_setzero_si256(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00,
                    c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
            for (int t = 0; t < R; t++) {          /* one kernel row: its S taps are contiguous in NHWC */
                const int32_t *a0 = base[0] + toff[t], *a1 = base[1] + toff[t], *a2 = base[2] + toff[t],
                              *a3 = base[3] + toff[t], *a4 = base[4] + toff[t], *a5 = base[5] + toff[t];
                const int16_t *bt = bp + (int64_t)t * S * KP * 2 * NR;
                for (int kp = 0; kp < KR; kp++) {
                    const __m256i b0 = _mm256_loadu_si256((const __m256i *)(bt + kp * 2 * NR));
                    const __m256i b1 = _mm256_loadu_si256((const __m256i *)(bt + kp * 2 * NR + NR));
                    __m256i a;
#define STEP(ai, x0, x1) a = _mm256_set1_epi32(ai[kp]); \
                    x0 = _mm256_add_epi32(x0, _mm256_madd_epi16(a, b0)); \
                    x1 = _mm256_add_epi32(x1, _mm256_madd_epi16(a, b1));
                    STEP(a0, c00, c01) STEP(a1, c10, c11) STEP(a2, c20, c21)
                    STEP(a3, c30, c31) STEP(a4, c40, c41) STEP(a5, c50, c51)
#undef STEP
                }
            }
            int32_t acc[MR][NR];
            _mm256_storeu_si256((__m256i *)acc[0], c00); _mm256_storeu_si256((__m256i *)(acc[0] + 8), c01);
            _mm256_storeu_si256((__m256i *)acc[1], c10); _mm256_storeu_si256((__m256i *)(acc[1] + 8), c11);
            _mm256_storeu_si256((__m256i *)acc[2], c20); _mm256_storeu_si256((__m256i *)(acc[2] + 8), c21);
            _mm256_storeu_si256((__m256i *)acc[3], c30); _mm256_storeu_si256((__m256i *)(acc[3] + 8), c31);
            _mm256_storeu_si256((__m256i *)acc[4], c40); _mm256_storeu_si256((__m256i *)(acc[4] + 8), c41);
            _mm256_storeu_si256((__m256i *)acc[5], c50); _mm256_storeu_si256((__m256i *)(acc[5] + 8), c51);
            if (check)
                tile_out((const int32_t(*)[NR])acc, mr, jb * NR, Co, bias, m0, shift, rnd, qmin, qmax, s_out,
                         check, alo, ahi, out, ooff, o_c, st);
            else
                tile_out_vec((const int32_t(*)[NR])acc, mr, jb * NR, Co, bias, m0, shift, rnd, qmin, qmax, s_out,
                             out, ooff, o_c);
        }
    }
    #pragma omp critical
    {
        nbad += st[0];
        if (st[1] < gmin) gmin = st[1];
        if (st[2] > gmax) gmax = st[2];
    }
    }
    stats[0] = nbad; stats[1] = gmin; stats[2] = gmax;
}

/* 1 when built with OpenMP (the Python side then leaves threading to the library). */
int eq_openmp(void) {
#ifdef _OPENMP
    return 1;
#else
    return 0;
#endif
}
