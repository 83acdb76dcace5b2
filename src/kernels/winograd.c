/* winograd.c — 3x3 stride-1 pad-1 convolution by Winograd's minimal filtering F(2x2, 3x3)
 * (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", 2016).
 *
 * Each 2 x 2 output tile is Y = A^T [(G g G^T) . (B^T d B)] A, with d the 4 x 4 input patch
 * over it (the padded input's rows 2ty .. 2ty + 3, columns 2tx .. 2tx + 3), g a 3 x 3 kernel and
 *   B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1],  G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1],
 *   A^T = [1 1 1 0; 0 1 -1 -1].
 * Summed over the input channels, the 16 products of a tile become 16 matrix products: for
 * every component xi = 4 i + k of the 4 x 4 transforms, M_xi (Oc, tiles) = U_xi (Oc, Ci)
 * V_xi (Ci, tiles). That is 16 multiply-adds per 4 outputs and input channel instead of the
 * direct convolution's 36: 2.25x fewer. The products run in the direct convolution's register
 * blocks (DB_O output channels x DB_P tiles, the weights broadcast), over chunks of tiles sized
 * so that a chunk's V and M stay in the L2 cache; the tiles of a worker's images form one list,
 * so chunks run across image boundaries and small images waste nothing but the last block.
 *
 * Rounding: the sums over channels run in float with one fma per term, as in the direct path,
 * on transformed values (sums of up to 4 inputs, of up to 9 kernel taps / 4, then sums of up to
 * 9 products). Against double, the error measured below the direct convolution's (e.g. 64 -> 64
 * at 14 x 14: max 4.2e-7 against 1.3e-6; the chains of sums are C terms long, not 9 C; test_conv
 * checks both with the same bounds). U is computed in
 * double and rounded once. Every tile is computed the same way wherever its chunk starts, so
 * results do not depend on the worker split. */
#include "winograd.h"
#include "conv_simd.h"

/* Floats of a chunk's V and M together: 256 KiB, about half the L2 cache (budgets of 2x and
 * 4x measured the same, inside the host's noise). */
#define WINO_BUDGET 65536
#define WINO_MAXQ (10 * DB_P)

static int64_t wino_chunk(int64_t Ci, int64_t Ob) {
    int64_t nq = WINO_BUDGET / (16 * (Ci + Ob)) / DB_P * DB_P;
    return nq < DB_P ? DB_P : nq > WINO_MAXQ ? WINO_MAXQ : nq;
}

int64_t ug_wino_packed_size(int64_t Oc, int64_t Ci) { return 16 * round_up(Oc, DB_O) * Ci; }

/* U[xi][ob][c][j] = (G g G^T)[i][k] (xi = 4 i + k) of output channel o = ob + j (zero past Oc)
 * and input channel c; in double, rounded once. The DB_O channels of a block side by side. */
void ug_wino_pack(float *U, const float *w, int64_t O, int64_t C, int transposed) {
    const int64_t Oc = transposed ? C : O, Ci = transposed ? O : C, Ob = round_up(Oc, DB_O),
                  xs = Ob * Ci;   /* floats between components */
    /* Orphaned: inside a parallel region the team shares the (block, channel) pairs. */
#pragma omp for schedule(static)
    for (int64_t q = 0; q < Ob / DB_O * Ci; q++) {
        const int64_t ob = q / Ci * DB_O, c = q % Ci;
        double k[9][DB_O], t[4][3][DB_O];
        for (int j = 0; j < DB_O; j++) {
            const int64_t o = ob + j;
            for (int s = 0; s < 9; s++)
                k[s][j] = o >= Oc ? 0.0
                          : transposed ? w[(c * C + o) * 9 + (8 - s)] : w[(o * C + c) * 9 + s];
        }
        for (int m = 0; m < 3; m++)   /* G g */
            for (int j = 0; j < DB_O; j++) {
                t[0][m][j] = k[m][j];
                t[1][m][j] = 0.5 * (k[m][j] + k[3 + m][j] + k[6 + m][j]);
                t[2][m][j] = 0.5 * (k[m][j] - k[3 + m][j] + k[6 + m][j]);
                t[3][m][j] = k[6 + m][j];
            }
        float *dst = U + ob * Ci + c * DB_O;
        for (int i = 0; i < 4; i++)   /* (G g) G^T, row i */
            for (int j = 0; j < DB_O; j++) {
                dst[(4 * i + 0) * xs + j] = (float)t[i][0][j];
                dst[(4 * i + 1) * xs + j] = (float)(0.5 * (t[i][0][j] + t[i][1][j] + t[i][2][j]));
                dst[(4 * i + 2) * xs + j] = (float)(0.5 * (t[i][0][j] - t[i][1][j] + t[i][2][j]));
                dst[(4 * i + 3) * xs + j] = (float)t[i][2][j];
            }
    }
}

/* The tile grid of one image: TH x TW tiles, tile t = ty TW + tx. The padded input d (rows 0
 * and H + 1 .., columns 0 and W + 1 .. zero) goes into eight arrays per channel by the parities
 * of its rows and columns and a shift: D(a, b, s)[ry TW + tx] = d[2 ry + a][2 (tx + s) + b]
 * (ry <= TH), so that tile t reads its patch row 2 di + a, column 2 dj + b at
 * D(a, b, dj)[t + di TW]: consecutive tiles, consecutive floats, with no border column between
 * the tile rows (a row down is TW floats on). The input transform thus runs on the tiles alone,
 * vectors across tile rows and, within a chunk, across images; so do the products (14 x 14:
 * 49 tiles an image where a grid with a border column, rounded to whole vectors, had 64
 * positions; 28 x 28: 196 for 224; 7 x 7: 16 for 32). DS: floats per array, the last vector's
 * reads included. */
typedef struct { int64_t TH, TW, DS; } wino_dims;

static wino_dims dims_of(const ug_conv_geom *g) {
    wino_dims d;
    d.TH = (g->H + 1) / 2;
    d.TW = (g->W + 1) / 2;
    d.DS = (d.TH + 1) * d.TW + VW;
    return d;
}

#define WINO_D(a, b, s) ((((a) * 2 + (b)) * 2 + (s)))   /* array index, DS floats apart */

int64_t ug_wino_work_size(const ug_conv_geom *g, int64_t Ci, int64_t Oc) {
    const wino_dims d = dims_of(g);
    const int64_t Ob = round_up(Oc, DB_O);
    /* + VW: output_tiles' loads past the last tile of M */
    return 8 * Ci * d.DS + 16 * wino_chunk(Ci, Ob) * (Ci + Ob) + VW;
}

#if VW == 16
typedef int ug_vi __attribute__((vector_size(64)));
#define EVENS ((ug_vi){0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30})
#define ODDS ((ug_vi){1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31})
#define DOWN1 ((ug_vi){1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16})
#define ZIP_LO ((ug_vi){0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23})
#define ZIP_HI ((ug_vi){8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31})
#else
typedef int ug_vi __attribute__((vector_size(32)));
#define ZIP_LO ((ug_vi){0, 8, 1, 9, 2, 10, 3, 11})
#define ZIP_HI ((ug_vi){4, 12, 5, 13, 6, 14, 7, 15})
#endif

/* The eight arrays of each channel of one image (Ci, H, W), channel c's at dp + 8 c DS. Row y of
 * the image is row y + 1 of d, ry = (y + 1) / 2, a = (y + 1) & 1; its column x has
 * b = (x + 1) & 1 and k = (x + 1) >> 1 (= tx + s): it goes to D(a, b, 0) at tx = k where
 * k < TW, and to D(a, b, 1) at tx = k - 1 where k >= 1. Only those cells are written: the rest
 * (the padding) the caller has zeroed. */
static void wino_arrays(float *dp, const float *in, int64_t Ci, const ug_conv_geom *g,
                        const wino_dims *d) {
    const int64_t H = g->H, W = g->W, TW = d->TW, DS = d->DS;
    for (int64_t c = 0; c < Ci; c++) {
        float *dc = dp + 8 * c * DS;
        for (int64_t y = 0; y < H; y++) {
            const int64_t a = (y + 1) & 1, r0 = ((y + 1) >> 1) * TW;
            const float *restrict src = in + (c * H + y) * W;
            float *restrict e0 = dc + WINO_D(a, 0, 0) * DS + r0, *restrict e1 = e0 + DS,
                            *restrict o0 = dc + WINO_D(a, 1, 0) * DS + r0, *restrict o1 = o0 + DS;
#if defined(UG_DIRECT_CONV) && VW == 16
            /* 2 VW columns at a time, the last run by masked loads and stores. */
            for (int64_t k = 0; 2 * k < W; k += VW) {   /* x = 2k .. 2k + nx - 1 */
                const int64_t nx = W - 2 * k < 2 * VW ? W - 2 * k : 2 * VW;
                const __mmask32 m = (__mmask32)(nx == 32 ? 0xFFFFFFFFu : (1u << nx) - 1u);
                const ug_vf lo = (ug_vf)_mm512_maskz_loadu_ps((__mmask16)m, src + 2 * k),
                            hi = (ug_vf)_mm512_maskz_loadu_ps((__mmask16)(m >> 16),
                                                              src + 2 * k + VW);
                const ug_vf ev = __builtin_shuffle(lo, hi, EVENS),
                            ov = __builtin_shuffle(lo, hi, ODDS);
                /* Even x = 2k + 2j: b = 1, at k + j (all < TW), (nx + 1) / 2 of them. Odd
                 * x = 2k + 2j + 1: b = 0, at k + j + 1, nx / 2 of them. */
                const int64_t ne = (nx + 1) / 2, no = nx / 2,
                              no0 = TW - k - 1 < no ? TW - k - 1 : no;   /* k + j + 1 < TW */
                const __mmask16 me = (__mmask16)((1u << ne) - 1u),
                                mo = (__mmask16)((1u << no) - 1u),
                                mo0 = (__mmask16)((1u << no0) - 1u);
                _mm512_mask_storeu_ps(o0 + k, me, (__m512)ev);
                if (k > 0) _mm512_mask_storeu_ps(o1 + k - 1, me, (__m512)ev);
                else   /* x = 0 has no s = 1 place: the lanes from 1, one down */
                    _mm512_mask_storeu_ps(o1, (__mmask16)(me >> 1),
                                          (__m512)__builtin_shuffle(ev, ev, DOWN1));
                _mm512_mask_storeu_ps(e0 + k + 1, mo0, (__m512)ov);
                _mm512_mask_storeu_ps(e1 + k, mo, (__m512)ov);
            }
#else
            for (int64_t x = 0; x < W; x++) {
                const int64_t k = (x + 1) >> 1;
                /* b = (x + 1) & 1 */
                float *s0 = (x + 1) & 1 ? o0 : e0, *s1 = (x + 1) & 1 ? o1 : e1;
                if (k < TW) s0[k] = src[x];
                if (k >= 1) s1[k - 1] = src[x];
            }
#endif
        }
    }
}

/* The first n lanes of *pv to dst (0 <= n <= VW), plus add's first n when has_add: masked loads
 * and a masked store, nothing past them is read or written. (Vectors by pointer: see LOADV.) */
static inline __attribute__((always_inline)) void
store_lanes(float *dst, const float *add, const ug_vf *pv, int64_t n, const int has_add) {
    ug_vf v = *pv;
#if defined(UG_DIRECT_CONV) && VW == 16
    const __mmask16 k = (__mmask16)((1u << n) - 1u);
    if (has_add) v = (ug_vf)_mm512_add_ps((__m512)v, _mm512_maskz_loadu_ps(k, add));
    _mm512_mask_storeu_ps(dst, k, (__m512)v);
#elif defined(UG_DIRECT_CONV)
    const __m256i k = _mm256_cmpgt_epi32(_mm256_set1_epi32((int)n),
                                         _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    if (has_add) v = (ug_vf)_mm256_add_ps((__m256)v, _mm256_maskload_ps(add, k));
    _mm256_maskstore_ps(dst, k, (__m256)v);
#else
    float t[VW];
    memcpy(t, &v, sizeof t);
    for (int64_t x = 0; x < n; x++) dst[x] = has_add ? t[x] + add[x] : t[x];
#endif
}

/* V[xi][c][q + t - ta] = (B^T d B)[xi] of the image's tiles ta <= t < tb, every input channel
 * (vs: floats between components); the lanes past tb are not stored. */
static void input_tiles(float *V, int64_t vs, int64_t NQ, int64_t q, const float *dp,
                        int64_t Ci, const wino_dims *d, int64_t ta, int64_t tb) {
    const int64_t DS = d->DS, TW = d->TW;
    for (int64_t c = 0; c < Ci; c++) {
        const float *dc = dp + 8 * c * DS;
        float *v = V + c * NQ + q - ta;
        for (int64_t t = ta; t < tb; t += VW) {
            const int64_t n = tb - t < VW ? tb - t : VW;
            ug_vf r[4][4];   /* patch rows 0..3, after d B: (d0 - d2, d1 + d2, d2 - d1, d1 - d3) */
#pragma GCC unroll 4
            for (int i = 0; i < 4; i++) {
                const float *e = dc + WINO_D(i & 1, 0, 0) * DS + t + (i >> 1) * TW,
                            *od = dc + WINO_D(i & 1, 1, 0) * DS + t + (i >> 1) * TW;
                ug_vf d0, d1, d2, d3;
                LOADV(d0, e);
                LOADV(d2, e + DS);
                LOADV(d1, od);
                LOADV(d3, od + DS);
                r[i][0] = d0 - d2;
                r[i][1] = d1 + d2;
                r[i][2] = d2 - d1;
                r[i][3] = d1 - d3;
            }
            /* B^T (d B): the same combination of the rows. Component xi at w + xi vs, the
             * pointer stepped from one to the next: with the 16 addresses computed ahead, GCC
             * kept them in vector registers and on the stack (two moves a store). */
            ug_vf o[16];
#pragma GCC unroll 4
            for (int k = 0; k < 4; k++) {
                o[k] = r[0][k] - r[2][k];
                o[4 + k] = r[1][k] + r[2][k];
                o[8 + k] = r[2][k] - r[1][k];
                o[12 + k] = r[1][k] - r[3][k];
            }
            float *w = v + t;
            int64_t step = vs;
            __asm__("" : "+r"(step));
#pragma GCC unroll 16
            for (int xi = 0; xi < 16; xi++, w += step) {
                if (n == VW) memcpy(w, &o[xi], sizeof o[xi]);
                else store_lanes(w, NULL, &o[xi], n, 0);
            }
        }
    }
}

/* m[j NQ + p0 ..][DB_P] = sum over c of u[c][j] v[c NQ + p0 ..]: one register block. */
static void wino_block(float *m, const float *v, int64_t NQ, const float *u, int64_t Ci,
                       int64_t p0) {
    ug_vf a[DB_O][NV];
    block_zero(a);
    const float *vc = v + p0;
#pragma GCC unroll 2
    for (int64_t c = 0; c < Ci; c++, vc += NQ, u += DB_O) {
        ug_vf x[NV];
        block_load(x, vc);
        block_fma(a, u, x);
    }
    block_store(m, NQ, p0, a);
}

/* dst[0 .. n) = the n floats of the 2 VW at y + off (0 <= off, off + n <= 2 VW, n > 0) [+
 * add[0 .. n)]. */
static inline __attribute__((always_inline)) void
store_run(float *dst, const float *add, const float *y, int64_t off, int64_t n,
          const int has_add) {
    ug_vf v;
    LOADV(v, y + off);   /* y holds 3 VW floats: the load past 2 VW reads the padding */
    store_lanes(dst, add, &v, n < VW ? n : VW, has_add);
    if (n > VW) {
        LOADV(v, y + off + VW);
        store_lanes(dst + VW, add + VW, &v, n - VW, has_add);
    }
}

/* out (Oc, H, W) = A^T M A + e's terms (conv.h) of the image's tiles ta <= t < tb, from
 * M[xi][o][q + t - ta] (ms floats between components): a vector of tiles gives VW tiles'
 * 2 x 2 outputs, interleaved into 2 VW floats per output row (tile i's two columns at 2 i,
 * 2 i + 1); each tile row's run of them goes to its place in the image. (The vector's lanes
 * past tb read the chunk's next tiles, or M's slack: computed and dropped.) */
static inline __attribute__((always_inline)) void
output_tiles_impl(float *out, const float *M, int64_t ms, int64_t NQ, int64_t q, int64_t Oc,
                  const ug_conv_geom *g, const wino_dims *d, int64_t ta, int64_t tb,
                  const ug_conv_epi *e, const int has_add) {
    const int64_t H = g->H, W = g->W, TW = d->TW;
    for (int64_t o = 0; o < Oc; o++) {
        const float *m = M + o * NQ + q - ta;
        ug_vf bv = {0}, tv = {0};
        bv += e->bias ? e->bias[o] : 0.0f;
        tv += e->ibias ? e->ibias[o] : 0.0f;
        for (int64_t t = ta; t < tb; t += VW) {
            ug_vf s[2][4];   /* A^T M: rows 0 + 1 + 2 and 1 - 2 - 3 */
#pragma GCC unroll 4
            for (int k = 0; k < 4; k++) {
                ug_vf m0, m1, m2, m3;
                LOADV(m0, m + k * ms + t);
                LOADV(m1, m + (4 + k) * ms + t);
                LOADV(m2, m + (8 + k) * ms + t);
                LOADV(m3, m + (12 + k) * ms + t);
                s[0][k] = m0 + m1 + m2;
                s[1][k] = m1 - m2 - m3;
            }
            ug_vf y[2][3];   /* (A^T M) A of output row a, interleaved; y[a][2]: load padding */
            for (int a = 0; a < 2; a++) {
                const ug_vf y0 = s[a][0] + s[a][1] + s[a][2] + bv + tv,
                            y1 = s[a][1] - s[a][2] - s[a][3] + bv + tv;
                y[a][0] = __builtin_shuffle(y0, y1, ZIP_LO);
                y[a][1] = __builtin_shuffle(y0, y1, ZIP_HI);
                y[a][2] = y[a][1];
            }
            const int64_t te = t + VW < tb ? t + VW : tb;
            for (int64_t u = t; u < te;) {   /* the tile row runs of the vector */
                const int64_t ty = u / TW, tx = u % TW, re = (ty + 1) * TW,
                              ue = re < te ? re : te, x0 = 2 * tx,
                              nx = 2 * (ue - u) < W - x0 ? 2 * (ue - u) : W - x0;
                for (int a = 0; a < 2 && 2 * ty + a < H; a++) {
                    const int64_t at = (o * H + 2 * ty + a) * W + x0;
                    store_run(out + at, has_add ? e->add + at : NULL, (const float *)y[a],
                              2 * (u - t), nx, has_add);
                }
                u = ue;
            }
        }
    }
}

static void output_tiles(float *out, const float *M, int64_t ms, int64_t NQ, int64_t q,
                         int64_t Oc, const ug_conv_geom *g, const wino_dims *d, int64_t ta,
                         int64_t tb, const ug_conv_epi *e) {
    if (e->add) output_tiles_impl(out, M, ms, NQ, q, Oc, g, d, ta, tb, e, 1);
    else output_tiles_impl(out, M, ms, NQ, q, Oc, g, d, ta, tb, e, 0);
}

void ug_wino_images(float *out, int64_t ostride, const ug_conv_epi *e, const float *in,
                    int64_t istride, int64_t nimg, int64_t Ci, int64_t Oc,
                    const float *U, const ug_conv_geom *g, float *work) {
    const wino_dims d = dims_of(g);
    const int64_t TT = d.TH * d.TW, T = nimg * TT, Ob = round_up(Oc, DB_O),
                  NQ = wino_chunk(Ci, Ob),
                  vs = Ci * NQ, ms = Ob * NQ;
    float *dp = work, *V = dp + 8 * Ci * d.DS, *M = V + 16 * vs;
    int64_t arrays_of = -1;   /* the image in dp */
    /* The arrays' padding: zeroed once, every image writes the same interior (wino_arrays). */
    memset(dp, 0, (size_t)(8 * Ci * d.DS) * sizeof *dp);
    /* Chunks of NQ tiles of the worker's images, one after the other: tile q of the list is
     * image q / TT's tile q % TT; a chunk's run in image n ends at the image's end or the
     * chunk's. */
#define WINO_RUN(q, q1) const int64_t n = (q) / TT, ta = (q) % TT, \
                                      tb = TT - ta < (q1) - (q) ? TT : ta + (q1) - (q)
    for (int64_t q0 = 0; q0 < T; q0 += NQ) {
        const int64_t nq = T - q0 < NQ ? T - q0 : NQ, nqp = round_up(nq, DB_P);
        for (int64_t q = q0; q < q0 + nq;) {
            WINO_RUN(q, q0 + nq);
            if (n != arrays_of) {
                wino_arrays(dp, in + n * istride, Ci, g, &d);
                arrays_of = n;
            }
            input_tiles(V, vs, NQ, q - q0, dp, Ci, &d, ta, tb);
            q += tb - ta;
        }
        if (nqp > nq)   /* the last block's unused positions: zeros, computed and dropped */
            for (int64_t r = 0; r < 16 * Ci; r++)
                memset(V + r * NQ + nq, 0, (size_t)(nqp - nq) * sizeof *V);
        for (int xi = 0; xi < 16; xi++)
            for (int64_t p0 = 0; p0 < nqp; p0 += DB_P)
                for (int64_t ob = 0; ob < Ob; ob += DB_O)
                    wino_block(M + xi * ms + ob * NQ, V + xi * vs, NQ, U + (xi * Ob + ob) * Ci,
                               Ci, p0);
        for (int64_t q = q0; q < q0 + nq;) {
            WINO_RUN(q, q0 + nq);
            const ug_conv_epi en = ug_conv_epi_at(e, n, Oc, ostride);
            output_tiles(out + n * ostride, M, ms, NQ, q - q0, Oc, g, &d, ta, tb, &en);
            q += tb - ta;
        }
    }
#undef WINO_RUN
}
