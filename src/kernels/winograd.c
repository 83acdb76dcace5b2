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

/* The tile grid of one image: TH x TW tiles in tile rows of TWp = TW + 1 positions (the last
 * one computed and dropped, as the direct path's border column); P = TH TWp rounded up to whole
 * vectors (the positions past TH TWp computed and dropped too). A vector of positions may span
 * several tile rows: the input transform does not care (see below), the output one stores each
 * tile row's run apart. The padded input d (rows 0 and H + 1 .., columns 0 and W + 1 .. zero)
 * goes into four planes by the parities of its rows and columns: plane (a, b)[ry TWp + kx] =
 * d[2 ry + a][2 kx + b] (ry <= TH), so that tile p = ty TWp + tx reads its patch row 2 di + a,
 * column 2 dj + b at plane (a, b)[p + di TWp + dj]: consecutive tiles, consecutive floats (a
 * dropped position reads whatever follows, zeros or its neighbours). PS: floats per plane, the
 * last vector's reads included. (Tile rows rounded up to whole vectors instead wasted 9 of 16
 * positions at 14 x 14 with 16-float vectors.) */
typedef struct { int64_t TH, TW, TWp, P, PS; } wino_dims;

static wino_dims dims_of(const ug_conv_geom *g) {
    wino_dims d;
    d.TH = (g->H + 1) / 2;
    d.TW = (g->W + 1) / 2;
    d.TWp = d.TW + 1;
    d.P = round_up(d.TH * d.TWp, VW);
    d.PS = d.P + d.TWp + VW;
    return d;
}

int64_t ug_wino_work_size(const ug_conv_geom *g, int64_t Ci, int64_t Oc) {
    const wino_dims d = dims_of(g);
    const int64_t Ob = round_up(Oc, DB_O);
    return 4 * Ci * d.PS + 16 * wino_chunk(Ci, Ob) * (Ci + Ob);
}

/* Two-source shuffles of whole vectors: the even and the odd lanes of (lo, hi), and the lanes of
 * (a, b) interleaved, first and second half. */
#if VW == 16
typedef int ug_vi __attribute__((vector_size(64)));
#define EVENS ((ug_vi){0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30})
#define ODDS ((ug_vi){1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31})
#define ZIP_LO ((ug_vi){0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23})
#define ZIP_HI ((ug_vi){8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31})
#else
typedef int ug_vi __attribute__((vector_size(32)));
#define EVENS ((ug_vi){0, 2, 4, 6, 8, 10, 12, 14})
#define ODDS ((ug_vi){1, 3, 5, 7, 9, 11, 13, 15})
#define ZIP_LO ((ug_vi){0, 8, 1, 9, 2, 10, 3, 11})
#define ZIP_HI ((ug_vi){4, 12, 5, 13, 6, 14, 7, 15})
#endif

/* The four planes of each channel of one image (Ci, H, W), channel c's at pl + 4 c PS. Row y of
 * the image is row y + 1 of d: its columns x go to plane (y + 1) & 1 at kx = (x + 1) >> 1,
 * b = (x + 1) & 1: the odd columns to b = 0 from kx = 1, the even ones to b = 1 from kx = 0.
 * Only those cells are written: the rest (the padding) the caller has zeroed. */
static void wino_planes(float *pl, const float *in, int64_t Ci, const ug_conv_geom *g,
                        const wino_dims *d) {
    const int64_t H = g->H, W = g->W, TWp = d->TWp, PS = d->PS;
    for (int64_t c = 0; c < Ci; c++) {
        float *p0 = pl + 4 * c * PS;
        for (int64_t y = 0; y < H; y++) {
            const int64_t a = (y + 1) & 1, ry = (y + 1) >> 1;
            const float *restrict src = in + (c * H + y) * W;
            float *restrict e = p0 + 2 * a * PS + ry * TWp, *restrict od = e + PS;
#if defined(UG_DIRECT_CONV) && VW == 16
            /* 2 VW columns at a time, the last run by masked loads and stores (a 28-wide row is
             * one run; the loop below would do it all in its scalar tail). */
            for (int64_t k = 0; 2 * k < W; k += VW) {   /* x = 2k .. 2k + nx - 1 */
                const int64_t nx = W - 2 * k < 2 * VW ? W - 2 * k : 2 * VW;
                const __mmask32 m = (__mmask32)(nx == 32 ? 0xFFFFFFFFu : (1u << nx) - 1u);
                const ug_vf lo = (ug_vf)_mm512_maskz_loadu_ps((__mmask16)m, src + 2 * k),
                            hi = (ug_vf)_mm512_maskz_loadu_ps((__mmask16)(m >> 16),
                                                              src + 2 * k + VW);
                const ug_vf ev = __builtin_shuffle(lo, hi, EVENS),
                            ov = __builtin_shuffle(lo, hi, ODDS);
                /* x = 2k + 2j to b = 1, kx = k + j ((nx + 1) / 2 of them); x = 2k + 2j + 1 to
                 * b = 0, kx = k + j + 1 (nx / 2). */
                const __mmask16 me = (__mmask16)((1u << ((nx + 1) / 2)) - 1u),
                                mo = (__mmask16)((1u << (nx / 2)) - 1u);
                _mm512_mask_storeu_ps(od + k, me, (__m512)ev);
                _mm512_mask_storeu_ps(e + k + 1, mo, (__m512)ov);
            }
#else
            const int64_t W2 = W / 2;
            int64_t k = 0;
            for (; k + VW <= W2; k += VW) {   /* x = 2k .. 2k + 2 VW - 1 */
                ug_vf lo, hi, ev, ov;
                LOADV(lo, src + 2 * k);
                LOADV(hi, src + 2 * k + VW);
                ev = __builtin_shuffle(lo, hi, EVENS);
                ov = __builtin_shuffle(lo, hi, ODDS);
                memcpy(od + k, &ev, sizeof ev);        /* x = 2k: b = 1, kx = k */
                memcpy(e + k + 1, &ov, sizeof ov);     /* x = 2k + 1: b = 0, kx = k + 1 */
            }
            for (; k < W2; k++) {
                od[k] = src[2 * k];
                e[k + 1] = src[2 * k + 1];
            }
            if (W & 1) od[W2] = src[W - 1];
#endif
        }
    }
}

/* V[xi][c][q + p - pa] = (B^T d B)[xi] of the image's tiles pa <= p < pb (whole vectors), every
 * input channel; vs: floats between components. */
static void input_tiles(float *V, int64_t vs, int64_t NQ, int64_t q, const float *pl,
                        int64_t Ci, const wino_dims *d, int64_t pa, int64_t pb) {
    const int64_t PS = d->PS, TWp = d->TWp;
    for (int64_t c = 0; c < Ci; c++) {
        const float *p0 = pl + 4 * c * PS;   /* planes (0,0) (0,1) (1,0) (1,1), PS apart */
        float *v = V + c * NQ + q - pa;
        for (int64_t p = pa; p < pb; p += VW) {
            ug_vf r[4][4];   /* patch rows 0..3, after d B: (d0 - d2, d1 + d2, d2 - d1, d1 - d3) */
#pragma GCC unroll 4
            for (int i = 0; i < 4; i++) {
                const float *e = p0 + (i & 1) * 2 * PS + p + (i >> 1) * TWp, *od = e + PS;
                ug_vf e0, e1, o0, o1;   /* d0 = e0, d1 = o0, d2 = e1, d3 = o1 */
                LOADV(e0, e);
                LOADV(e1, e + 1);
                LOADV(o0, od);
                LOADV(o1, od + 1);
                r[i][0] = e0 - e1;
                r[i][1] = o0 + e1;
                r[i][2] = e1 - o0;
                r[i][3] = o0 - o1;
            }
#pragma GCC unroll 4
            for (int k = 0; k < 4; k++) {   /* B^T (d B): the same combination of the rows */
                const ug_vf v0 = r[0][k] - r[2][k], v1 = r[1][k] + r[2][k],
                            v2 = r[2][k] - r[1][k], v3 = r[1][k] - r[3][k];
                memcpy(v + (0 + k) * vs + p, &v0, sizeof v0);
                memcpy(v + (4 + k) * vs + p, &v1, sizeof v1);
                memcpy(v + (8 + k) * vs + p, &v2, sizeof v2);
                memcpy(v + (12 + k) * vs + p, &v3, sizeof v3);
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

/* out (Oc, H, W) = A^T M A + e's terms (conv.h) of the image's tiles pa <= p < pb, from
 * M[xi][o][q + p - pa] (ms floats between components): a vector of positions gives VW tiles'
 * 2 x 2 outputs, interleaved into 2 VW floats per output row (tile i's two columns at 2 i,
 * 2 i + 1); each tile row's run of them goes to its place in the image. */
static inline __attribute__((always_inline)) void
output_tiles_impl(float *out, const float *M, int64_t ms, int64_t NQ, int64_t q, int64_t Oc,
                  const ug_conv_geom *g, const wino_dims *d, int64_t pa, int64_t pb,
                  const ug_conv_epi *e, const int has_add) {
    const int64_t H = g->H, W = g->W, TWp = d->TWp, TW = d->TW, last = d->TH * TWp;
    if (pb > last) pb = last;
    for (int64_t o = 0; o < Oc; o++) {
        const float *m = M + o * NQ + q - pa;
        ug_vf bv = {0}, tv = {0};
        bv += e->bias ? e->bias[o] : 0.0f;
        tv += e->ibias ? e->ibias[o] : 0.0f;
        for (int64_t p = pa; p < pb; p += VW) {
            ug_vf s[2][4];   /* A^T M: rows 0 + 1 + 2 and 1 - 2 - 3 */
#pragma GCC unroll 4
            for (int k = 0; k < 4; k++) {
                ug_vf m0, m1, m2, m3;
                LOADV(m0, m + k * ms + p);
                LOADV(m1, m + (4 + k) * ms + p);
                LOADV(m2, m + (8 + k) * ms + p);
                LOADV(m3, m + (12 + k) * ms + p);
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
            const int64_t pe = p + VW < pb ? p + VW : pb;
            for (int64_t t = p; t < pe;) {   /* the tile row runs of the vector */
                const int64_t ty = t / TWp, tx = t % TWp, re = (ty + 1) * TWp,
                              te = re < pe ? re : pe, x0 = 2 * tx;
                if (tx < TW) {
                    const int64_t nx = 2 * (te - t) < W - x0 ? 2 * (te - t) : W - x0;
                    for (int a = 0; a < 2 && 2 * ty + a < H; a++) {
                        const int64_t at = (o * H + 2 * ty + a) * W + x0;
                        store_run(out + at, has_add ? e->add + at : NULL, (const float *)y[a],
                                  2 * (t - p), nx, has_add);
                    }
                }
                t = te;
            }
        }
    }
}

static void output_tiles(float *out, const float *M, int64_t ms, int64_t NQ, int64_t q,
                         int64_t Oc, const ug_conv_geom *g, const wino_dims *d, int64_t pa,
                         int64_t pb, const ug_conv_epi *e) {
    if (e->add) output_tiles_impl(out, M, ms, NQ, q, Oc, g, d, pa, pb, e, 1);
    else output_tiles_impl(out, M, ms, NQ, q, Oc, g, d, pa, pb, e, 0);
}

void ug_wino_images(float *out, int64_t ostride, const ug_conv_epi *e, const float *in,
                    int64_t istride, int64_t nimg, int64_t Ci, int64_t Oc,
                    const float *U, const ug_conv_geom *g, float *work) {
    const wino_dims d = dims_of(g);
    const int64_t P = d.P, T = nimg * P, Ob = round_up(Oc, DB_O), NQ = wino_chunk(Ci, Ob),
                  vs = Ci * NQ, ms = Ob * NQ;
    float *pl = work, *V = pl + 4 * Ci * d.PS, *M = V + 16 * vs;
    int64_t planes_of = -1;   /* the image in pl */
    /* The planes' padding: zeroed once, every image writes the same interior (wino_planes). */
    memset(pl, 0, (size_t)(4 * Ci * d.PS) * sizeof *pl);
    /* Chunks of NQ positions of the worker's images, one after the other (P and NQ are whole
     * vectors, so every image's part of a chunk is too). Position q of the list is image q / P,
     * tile q % P; a chunk's run in image n ends at the image's end or the chunk's. */
#define WINO_RUN(q, q1) const int64_t n = (q) / P, pa = (q) % P, \
                                      pb = P - pa < (q1) - (q) ? P : pa + (q1) - (q)
    for (int64_t q0 = 0; q0 < T; q0 += NQ) {
        const int64_t nq = T - q0 < NQ ? T - q0 : NQ, nqp = round_up(nq, DB_P);
        for (int64_t q = q0; q < q0 + nq;) {
            WINO_RUN(q, q0 + nq);
            if (n != planes_of) {
                wino_planes(pl, in + n * istride, Ci, g, &d);
                planes_of = n;
            }
            input_tiles(V, vs, NQ, q - q0, pl, Ci, &d, pa, pb);
            q += pb - pa;
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
            output_tiles(out + n * ostride, M, ms, NQ, q - q0, Oc, g, &d, pa, pb, &en);
            q += pb - pa;
        }
    }
#undef WINO_RUN
}
