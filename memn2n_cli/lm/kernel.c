/* The hops of the Section 5 language model on the CPU, forward and backward.

   memn2n_cli/lm/kernel.py compiles this file once per machine and calls it through ctypes; the
   plain PyTorch path (model.multi_hop) computes the same, and tests/test_lm_kernel.py says so.

   Layer-wise tying (Sec. 2.2): one memory serves every hop. For each example, with the memories
   m_i = A x_i + T_A(i) and c_i = C x_i + T_C(i) of its N words (Sec. 5),
       p^k     = softmax_i(m_i . u^k)                        (1)
       o^k     = sum_i p^k_i c_i                              (2)
       u^{k+1} = ReLU on the units >= L of (H u^k + o^k)      (Sec. 2.2, Sec. 5.1)
   and, from g = dLoss/du^{K+1}, hop k = K..1 backward:
       dv^k = g where that unit is linear or positive, else 0
       ds^k_i = p^k_i (c_i . dv^k - sum_j p^k_j c_j . dv^k)   (softmax backward)
       g = H^T dv^k + sum_i ds^k_i m_i                        (dLoss/du^k)
   Every hop's ds^k and dv^k are kept, so that the gradients of the shared memories are formed
   once, dm_i = sum_k ds^k_i u^k and dc_i = sum_k p^k_i dv^k, and summed into a row per distinct
   word by one thread (lm_embedding_grads), in a fixed order: the results do not depend on the
   number of threads. lm_softmax_loss and lm_add_rows serve the fused training step
   (lm_kernel.SGDStep): the loss and its gradient in one pass over the logits, and SGD on the rows
   of A and C that the batch used.

   An example's two memories (2 N d floats: 240 KB at N = 200, d = 150) stay in the core's cache
   for all K hops; that, not arithmetic, is what PyTorch's batched products could not give.
   Layouts (row-major, float32): U (B, K+1, dp) holds u^1 (set by the caller) .. u^{K+1}, with
   rows of dp = lm_row_floats(d) floats, zeros past d; P and DS (B, K, N); DO (B, K, dp).
   Functions return 0, or -1 when memory ran out. */

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#else  /* a serial build (a compiler without OpenMP): one thread; the `omp simd` loops stay vectorised */
static int omp_get_thread_num(void) { return 0; }
static int omp_get_num_threads(void) { return 1; }
#endif

/* The kernel's rows are padded with zeros to whole vectors of 8 floats (dp = d rounded up), so
   that no loop has a remainder; `vec` is GCC's and Clang's portable vector type, compiled for
   whatever vector unit -march=native finds. */
typedef float vec __attribute__((vector_size(32)));
typedef int32_t ivec __attribute__((vector_size(32)));
#define LANES 8
#if defined(__clang__) || __GNUC__ >= 12
#define SHUFFLE(a, b, ...) __builtin_shufflevector(a, b, __VA_ARGS__)
#else  /* GCC before 12 */
#define SHUFFLE(a, b, ...) __builtin_shuffle(a, b, (ivec){__VA_ARGS__})
#endif

static inline vec load(const float *p) { vec v; memcpy(&v, p, sizeof v); return v; }
static inline void store(float *p, vec v) { memcpy(p, &v, sizeof v); }
static inline vec splat(float a) { return (vec){a, a, a, a, a, a, a, a}; }
static int64_t padded(int64_t n) { return (n + LANES - 1) / LANES * LANES; }

/* The floats in a row of d: U's and DO's rows are padded too (the caller asks this). */
int64_t lm_row_floats(int d) { return padded(d); }

/* [a0+a1, a2+a3, b0+b1, b2+b3, a4+a5, a6+a7, b4+b5, b6+b7] */
static inline vec pair_sums(vec a, vec b) {
    return SHUFFLE(a, b, 0, 2, 8, 10, 4, 6, 12, 14) + SHUFFLE(a, b, 1, 3, 9, 11, 5, 7, 13, 15);
}

/* The sum of each of eight vectors' lanes, as one vector. */
static inline vec lane_sums(const vec a[8]) {
    vec u0 = pair_sums(pair_sums(a[0], a[1]), pair_sums(a[2], a[3]));
    vec u1 = pair_sums(pair_sums(a[4], a[5]), pair_sums(a[6], a[7]));
    return SHUFFLE(u0, u1, 0, 1, 2, 3, 8, 9, 10, 11) + SHUFFLE(u0, u1, 4, 5, 6, 7, 12, 13, 14, 15);
}

/* y_r = M_r . v for the n rows of M (n x dp), eight rows at a time: eight independent sums in
   flight, each load of v serving eight rows. */
static void dots(const float *M, const float *v, int64_t n, int64_t dp, float *y) {
    for (int64_t r = 0; r < n; r += LANES) {
        const float *m[LANES];
        vec a[LANES] = {0};
        float s[LANES];
        for (int q = 0; q < LANES; q++) m[q] = M + (r + q < n ? r + q : r) * dp;
        for (int64_t j = 0; j < dp; j += LANES) {
            vec x = load(v + j);
#pragma GCC unroll 8
            for (int q = 0; q < LANES; q++) a[q] += load(m[q] + j) * x;
        }
        store(s, lane_sums(a));
        for (int q = 0; q < LANES && r + q < n; q++) y[r + q] = s[q];
    }
}

/* y += M^T w for the n rows of M (n x dp), eight rows at a time (rows past the end weighted 0),
   so that y is loaded and stored once per eight rows. */
static void axpy(const float *M, const float *w, int64_t n, int64_t dp, float *y) {
    for (int64_t r = 0; r < n; r += LANES) {
        const float *m[LANES];
        vec c[LANES];
        for (int q = 0; q < LANES; q++) {
            m[q] = M + (r + q < n ? r + q : r) * dp;
            c[q] = splat(r + q < n ? w[r + q] : 0.0f);
        }
        for (int64_t j = 0; j < dp; j += LANES) {
            vec s = load(y + j);
#pragma GCC unroll 8
            for (int q = 0; q < LANES; q++) s += c[q] * load(m[q] + j);
            store(y + j, s);
        }
    }
}

/* e^x for x <= 0, within a few units in the last place (Cephes' expf): x = n ln2 + r with
   |r| <= ln2 / 2, e^r by a polynomial of degree 6, times 2^n put into the exponent's bits. Below
   -87.3 it gives e^-87.3 (1e-38) instead of a subnormal number or zero. */
static inline vec exp_nonpositive(vec x) {
    const vec lowest = splat(-87.3f), round = splat(12582912.0f);  /* 1.5 * 2^23: adding it rounds to an integer */
    ivec low = x < lowest;
    x = (vec)(((ivec)lowest & low) | ((ivec)x & ~low));
    vec n = (x * 1.44269504088896341f + round) - round;
    vec r = x - n * 0.693359375f + n * 2.12194440e-4f;
    vec y = ((((1.9875691500e-4f * r + 1.3981999507e-3f) * r + 8.3334519073e-3f) * r + 4.1665795894e-2f) * r
             + 1.6666665459e-1f) * r + 5.0000001201e-1f;
    y = y * r * r + r + 1.0f;
    return y * (vec)((__builtin_convertvector(n, ivec) + 127) << 23);
}

/* s_i = e^(s_i - top) for the n floats of s, top at least each of them; returns their sum. */
static float exp_shifted(float *s, int64_t n, float top) {
    vec total = splat(0.0f);
    float rest[LANES], z[LANES], tail = 0.0f;
    int64_t i = 0;
    for (; i + LANES <= n; i += LANES) {
        vec e = exp_nonpositive(load(s + i) - top);
        store(s + i, e);
        total += e;
    }
    if (i < n) {  /* the last few, through a vector's room */
        for (int q = 0; q < LANES; q++) rest[q] = i + q < n ? s[i + q] : top;
        store(rest, exp_nonpositive(load(rest) - top));
        for (int q = 0; i + q < n; q++) s[i + q] = rest[q], tail += rest[q];
    }
    store(z, total);
    return tail + z[0] + z[1] + z[2] + z[3] + z[4] + z[5] + z[6] + z[7];
}

static float largest(const float *s, int64_t n) {
    float top = -INFINITY;
#pragma omp simd reduction(max:top)
    for (int64_t i = 0; i < n; i++) top = s[i] > top ? s[i] : top;
    return top;
}

/* p = softmax(s) in place, over the n floats of s. */
static void softmax(float *s, int64_t n) {
    float inverse = 1.0f / exp_shifted(s, n, largest(s, n));
#pragma omp simd
    for (int64_t i = 0; i < n; i++) s[i] *= inverse;
}

/* m_i = A x_i + T_A(i), c_i = C x_i + T_C(i) for the N words x of one example, rows of dp floats
   padded with zeros. The rows of A and C are scattered in memory: each is asked for eight words
   ahead, so that the loads overlap. */
static void memories(const int64_t *x, const float *A, const float *C, const float *TA, const float *TC,
                     int N, int d, int64_t dp, float *m, float *c) {
    for (int64_t i = 0; i < N; i++) {
        for (int j = 0; i + 8 < N && j < d; j += 16) {  /* 16 floats: a cache line */
            __builtin_prefetch(A + x[i + 8] * d + j);
            __builtin_prefetch(C + x[i + 8] * d + j);
        }
        const float *a = A + x[i] * d, *cc = C + x[i] * d, *ta = TA + i * d, *tc = TC + i * d;
        float *mi = m + i * dp, *ci = c + i * dp;
#pragma omp simd
        for (int j = 0; j < d; j++) { mi[j] = a[j] + ta[j]; ci[j] = cc[j] + tc[j]; }
        for (int64_t j = d; j < dp; j++) mi[j] = ci[j] = 0.0f;
    }
}

/* n floats, 32-byte aligned, zeroed; on failure NULL, and *failed set for the caller to return -1. */
static float *scratch(int64_t n, int *failed) {
    float *memory = aligned_alloc(32, sizeof(float) * padded(n));
    if (!memory) {
#pragma omp atomic write
        *failed = 1;
        return NULL;
    }
    memset(memory, 0, sizeof(float) * padded(n));
    return memory;
}

/* H (d x d) with its rows padded to dp floats. */
static float *padded_rows(const float *H, int d, int64_t dp, int *failed) {
    float *Hp = scratch(d * dp, failed);
    for (int64_t r = 0; Hp && r < d; r++) memcpy(Hp + r * dp, H + r * d, sizeof(float) * d);
    return Hp;
}

int lm_forward(int64_t B, int N, int d, int K, int L, const int64_t *x, const float *A, const float *C,
               const float *TA, const float *TC, const float *H, float *U, float *P) {
    int failed = 0;
    int64_t dp = padded(d), Np = padded(N);
    float *Hp = padded_rows(H, d, dp, &failed);
    if (!Hp) return -1;
#pragma omp parallel
    {
        float *m = scratch(2 * N * dp + 2 * dp + Np, &failed);
#pragma omp for schedule(static)
        for (int64_t b = 0; b < B; b++) {
            if (!m) continue;
            float *c = m + N * dp, *u = c + N * dp, *v = u + dp, *p = v + dp;
            memories(x + b * N, A, C, TA, TC, N, d, dp, m, c);
            memcpy(u, U + b * (K + 1) * dp, sizeof(float) * dp);
            for (int k = 0; k < K; k++) {
                dots(m, u, N, dp, p);
                softmax(p, N);
                memcpy(P + (b * K + k) * N, p, sizeof(float) * N);
                dots(Hp, u, d, dp, v);
                axpy(c, p, N, dp, v);
                for (int j = L; j < d; j++) v[j] = v[j] > 0.0f ? v[j] : 0.0f;
                memcpy(U + (b * (K + 1) + k + 1) * dp, v, sizeof(float) * dp);
                float *t = u; u = v; v = t;
            }
        }
        free(m);
    }
    free(Hp);
    return failed ? -1 : 0;
}

int lm_backward(int64_t B, int N, int d, int K, int L, const int64_t *x, const float *A, const float *C,
                const float *TA, const float *TC, const float *H, const float *U, const float *P,
                const float *grad, float *DS, float *DO) {
    int failed = 0;
    int64_t dp = padded(d), Np = padded(N);
    float *Hp = padded_rows(H, d, dp, &failed);
    if (!Hp) return -1;
#pragma omp parallel
    {
        float *m = scratch(2 * N * dp + 2 * dp + Np, &failed);
#pragma omp for schedule(static)
        for (int64_t b = 0; b < B; b++) {
            if (!m) continue;
            float *c = m + N * dp, *g = c + N * dp, *dv = g + dp, *ds = dv + dp;
            memories(x + b * N, A, C, TA, TC, N, d, dp, m, c);
            memcpy(g, grad + b * d, sizeof(float) * d);
            for (int k = K - 1; k >= 0; k--) {
                const float *v = U + (b * (K + 1) + k + 1) * dp, *p = P + (b * K + k) * N;
                float pd = 0.0f;
                for (int j = 0; j < d; j++) dv[j] = (j < L || v[j] > 0.0f) ? g[j] : 0.0f;
                memcpy(DO + (b * K + k) * dp, dv, sizeof(float) * dp);
                dots(c, dv, N, dp, ds);
#pragma omp simd reduction(+:pd)
                for (int i = 0; i < N; i++) pd += p[i] * ds[i];
#pragma omp simd
                for (int i = 0; i < N; i++) DS[(b * K + k) * N + i] = p[i] * (ds[i] - pd);
                if (k == 0) break;  /* u^1 is the constant query: no gradient */
                memset(g, 0, sizeof(float) * dp);
                axpy(Hp, dv, d, dp, g);
                axpy(m, DS + (b * K + k) * N, N, dp, g);
            }
        }
        free(m);
    }
    free(Hp);
    return failed ? -1 : 0;
}

/* The gradients of A and C as rows of the words in the batch: words[r] is the r-th distinct word
   (ascending), dA[r] = sum of dm_i and dC[r] = sum of dc_i over every slot i of every example that
   holds it, with dm_i = sum_k ds^k_i u^k and dc_i = sum_k p^k_i dv^k; *count the number of rows
   (dA, dC and words hold room for min(V, B N)). The B N slots are sorted by word (a counting
   sort, stable: by example within a word), and each thread takes a run of whole words: no two
   threads write one row, and each row's sum has a fixed order, so the results do not depend on
   the number of threads. A word's slots in one example share u^k and dv^k: their ds^k_i and p^k_i
   are summed first (about 4 slots in 10 of a Penn Treebank batch repeat a word of their example). */
int lm_embedding_grads(int64_t B, int N, int d, int K, int64_t V, const int64_t *x, const float *U,
                       const float *P, const float *DS, const float *DO, int64_t *words, float *dA, float *dC,
                       int64_t *count) {
    int64_t n = B * N, *first = calloc(V + 1, sizeof(int64_t)), *order = malloc(sizeof(int64_t) * n);
    int64_t *row = malloc(sizeof(int64_t) * (V + 1));
    if (!first || !order || !row) { free(first); free(order); free(row); return -1; }
    for (int64_t s = 0; s < n; s++) first[x[s] + 1]++;
    *count = 0;
    for (int64_t w = 0; w < V; w++) {
        row[w] = *count;  /* the row of word w, when it occurs */
        if (first[w + 1]) words[(*count)++] = w;
        first[w + 1] += first[w];  /* first[w]: where word w's slots start */
    }
    for (int64_t s = 0; s < n; s++) order[first[x[s]]++] = s;  /* first[w] now where word w + 1's start */
    int failed = 0;
#pragma omp parallel
    {
        int64_t t = omp_get_thread_num(), T = omp_get_num_threads();
        int64_t start = n * t / T, end = n * (t + 1) / T;
        while (start > 0 && start < n && x[order[start]] == x[order[start - 1]]) start++;
        while (end > 0 && end < n && x[order[end]] == x[order[end - 1]]) end++;
        int64_t dp = padded(d);
        float *da = scratch(2 * dp + 2 * K, &failed), *dc = da + dp, *ds = dc + dp, *p = ds + K;  /* a word's rows; a slot's ds^k_i, p^k_i */
        for (int64_t s = start; da && s < end; s++) {
            int64_t b = order[s] / N, i = order[s] % N, w = x[order[s]];
            for (int64_t k = 0; k < K; k++) { ds[k] += DS[(b * K + k) * N + i]; p[k] += P[(b * K + k) * N + i]; }
            int last_of_word = s + 1 == end || x[order[s + 1]] != w;
            if (last_of_word || order[s + 1] / N != b) {  /* the last slot of this word in example b */
                axpy(U + b * (K + 1) * dp, ds, K, dp, da);  /* sum over those slots of dm_i = sum_k ds^k_i u^k */
                axpy(DO + b * K * dp, p, K, dp, dc);  /* and of dc_i = sum_k p^k_i dv^k */
                memset(ds, 0, sizeof(float) * 2 * K);
            }
            if (last_of_word) {
                memcpy(dA + row[w] * d, da, sizeof(float) * d), memcpy(dC + row[w] * d, dc, sizeof(float) * d);
                memset(da, 0, sizeof(float) * 2 * dp);
            }
        }
        free(da);
    }
    free(first);
    free(order);
    free(row);
    return failed ? -1 : 0;
}

/* Eq. (3)'s softmax and the cross-entropy, forward and backward in one pass over each of the B
   rows of logits (B x V): loss[b] = log sum_w e^{z_w} - z_target, and in the logits' place their
   gradient, softmax(z) - onehot(target). */
int lm_softmax_loss(int64_t B, int64_t V, float *logits, const int64_t *target, double *loss) {
#pragma omp parallel for schedule(static)
    for (int64_t b = 0; b < B; b++) {
        float *z = logits + b * V, top = largest(z, V), picked = z[target[b]];
        float sum = exp_shifted(z, V, top), inverse = 1.0f / sum;
        loss[b] = (double)top + log((double)sum) - (double)picked;
#pragma omp simd
        for (int64_t w = 0; w < V; w++) z[w] *= inverse;
        z[target[b]] -= 1.0f;
    }
    return 0;
}

/* table[words[r]] += alpha rows[r] for the n rows (n x d) of distinct words: SGD on the rows of
   A or C that the batch used, the only ones with a gradient. */
int lm_add_rows(int64_t n, int d, const int64_t *words, const float *rows, float alpha, float *table) {
#pragma omp parallel for schedule(static)
    for (int64_t r = 0; r < n; r++) {
        float *t = table + words[r] * d;
        const float *g = rows + r * d;
#pragma omp simd
        for (int j = 0; j < d; j++) t[j] += alpha * g[j];
    }
    return 0;
}
