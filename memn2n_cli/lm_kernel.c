/* The hops of the Section 5 language model on the CPU, forward and backward.

   memn2n_cli/lm_kernel.py compiles this file once per machine and calls it through ctypes; the
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
   once, dm_i = sum_k ds^k_i u^k and dc_i = sum_k p^k_i dv^k, and added into the rows of A and C
   of each word by one thread (lm_embedding_grads), in a fixed order: the results do not depend on
   the number of threads.

   An example's two memories (2 N d floats: 240 KB at N = 200, d = 150) stay in the core's cache
   for all K hops; that, not arithmetic, is what PyTorch's batched products could not give.
   Layouts (row-major, float32): U (B, K+1, d) holds u^1 (set by the caller) .. u^{K+1};
   P and DS (B, K, N); DO (B, K, d). Functions return 0, or -1 when memory ran out. */

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <omp.h>

/* y_r = M_r . v for the n rows of M (n x d, row-major), eight rows at a time so that eight
   independent sums are in flight and each load of v serves eight rows. */
static void matvec(const float *M, const float *v, int64_t n, int d, float *y) {
    int64_t r = 0;
    for (; r + 8 <= n; r += 8) {
        const float *m = M + r * d;
        float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f, s4 = 0.0f, s5 = 0.0f, s6 = 0.0f, s7 = 0.0f;
#pragma omp simd reduction(+:s0, s1, s2, s3, s4, s5, s6, s7)
        for (int j = 0; j < d; j++) {
            s0 += m[j] * v[j]; s1 += m[d + j] * v[j]; s2 += m[2 * d + j] * v[j]; s3 += m[3 * d + j] * v[j];
            s4 += m[4 * d + j] * v[j]; s5 += m[5 * d + j] * v[j]; s6 += m[6 * d + j] * v[j]; s7 += m[7 * d + j] * v[j];
        }
        y[r] = s0; y[r + 1] = s1; y[r + 2] = s2; y[r + 3] = s3; y[r + 4] = s4; y[r + 5] = s5; y[r + 6] = s6; y[r + 7] = s7;
    }
    for (; r < n; r++) {
        const float *m = M + r * d;
        float s = 0.0f;
#pragma omp simd reduction(+:s)
        for (int j = 0; j < d; j++) s += m[j] * v[j];
        y[r] = s;
    }
}

/* y += M^T w for the n rows of M (n x d): eight rows at a time, and the last up to seven in one
   more pass (rows past the end weighted 0), so that y is loaded and stored once per eight rows. */
static void matvec_t(const float *M, const float *w, int64_t n, int d, float *y) {
    for (int64_t r = 0; r < n; r += 8) {
        const float *m[8];
        float c[8];
        for (int q = 0; q < 8; q++) {
            m[q] = M + (r + q < n ? r + q : r) * d;
            c[q] = r + q < n ? w[r + q] : 0.0f;
        }
#pragma omp simd
        for (int j = 0; j < d; j++)
            y[j] += c[0] * m[0][j] + c[1] * m[1][j] + c[2] * m[2][j] + c[3] * m[3][j]
                  + c[4] * m[4][j] + c[5] * m[5][j] + c[6] * m[6][j] + c[7] * m[7][j];
    }
}

/* m_i = A x_i + T_A(i), c_i = C x_i + T_C(i) for the N words x of one example. The rows of A and
   C are scattered in memory: each is asked for eight words ahead, so that the loads overlap. */
static void memories(const int64_t *x, const float *A, const float *C, const float *TA, const float *TC,
                     int N, int d, float *m, float *c) {
    for (int64_t i = 0; i < N; i++) {
        for (int j = 0; i + 8 < N && j < d; j += 16) {  /* 16 floats: a cache line */
            __builtin_prefetch(A + x[i + 8] * d + j);
            __builtin_prefetch(C + x[i + 8] * d + j);
        }
        const float *a = A + x[i] * d, *cc = C + x[i] * d, *ta = TA + i * d, *tc = TC + i * d;
        float *mi = m + i * d, *ci = c + i * d;
#pragma omp simd
        for (int j = 0; j < d; j++) { mi[j] = a[j] + ta[j]; ci[j] = cc[j] + tc[j]; }
    }
}

/* A thread's scratch of n floats; on failure NULL, and *failed set for the caller to return -1. */
static float *scratch(int64_t n, int *failed) {
    float *memory = malloc(sizeof(float) * n);
    if (!memory) {
#pragma omp atomic write
        *failed = 1;
    }
    return memory;
}

int lm_forward(int64_t B, int N, int d, int K, int L, const int64_t *x, const float *A, const float *C,
               const float *TA, const float *TC, const float *H, float *U, float *P) {
    int failed = 0;
#pragma omp parallel
    {
        float *m = scratch(2 * (int64_t)N * d, &failed);
#pragma omp for schedule(static)
        for (int64_t b = 0; b < B; b++) {
            if (!m) continue;
            float *c = m + (int64_t)N * d;
            memories(x + b * N, A, C, TA, TC, N, d, m, c);
            for (int k = 0; k < K; k++) {
                const float *u = U + (b * (K + 1) + k) * d;
                float *v = U + (b * (K + 1) + k + 1) * d, *p = P + (b * K + k) * N;
                float top = -INFINITY, z = 0.0f;
                matvec(m, u, N, d, p);
                for (int i = 0; i < N; i++) top = p[i] > top ? p[i] : top;
                for (int i = 0; i < N; i++) { p[i] = expf(p[i] - top); z += p[i]; }
                for (int i = 0; i < N; i++) p[i] /= z;
                matvec(H, u, d, d, v);
                matvec_t(c, p, N, d, v);
                for (int j = L; j < d; j++) v[j] = v[j] > 0.0f ? v[j] : 0.0f;
            }
        }
        free(m);
    }
    return failed ? -1 : 0;
}

int lm_backward(int64_t B, int N, int d, int K, int L, const int64_t *x, const float *A, const float *C,
                const float *TA, const float *TC, const float *H, const float *U, const float *P,
                const float *grad, float *DS, float *DO) {
    int failed = 0;
#pragma omp parallel
    {
        float *m = scratch(2 * (int64_t)N * d + d, &failed);
#pragma omp for schedule(static)
        for (int64_t b = 0; b < B; b++) {
            if (!m) continue;
            float *c = m + (int64_t)N * d, *g = c + (int64_t)N * d;
            memories(x + b * N, A, C, TA, TC, N, d, m, c);
            for (int j = 0; j < d; j++) g[j] = grad[b * d + j];
            for (int k = K - 1; k >= 0; k--) {
                const float *u = U + (b * (K + 1) + k) * d, *v = u + d, *p = P + (b * K + k) * N;
                float *dv = DO + (b * K + k) * d, *ds = DS + (b * K + k) * N, pd = 0.0f;
                for (int j = 0; j < d; j++) dv[j] = (j < L || v[j] > 0.0f) ? g[j] : 0.0f;
                matvec(c, dv, N, d, ds);
                for (int i = 0; i < N; i++) pd += p[i] * ds[i];
                for (int i = 0; i < N; i++) ds[i] = p[i] * (ds[i] - pd);
                if (k == 0) break;  /* u^1 is the constant query: no gradient */
                for (int j = 0; j < d; j++) g[j] = 0.0f;
                matvec_t(H, dv, d, d, g);
                matvec_t(m, ds, N, d, g);
            }
        }
        free(m);
    }
    return failed ? -1 : 0;
}

/* dA[w] += dm_i and dC[w] += dc_i for every slot i of every example that holds word w: the B N
   slots are sorted by word (a counting sort, stable), and each thread takes a run of whole words,
   so that no two threads write one row and each row's sum has a fixed order. */
int lm_embedding_grads(int64_t B, int N, int d, int K, int64_t V, const int64_t *x, const float *U,
                       const float *P, const float *DS, const float *DO, float *dA, float *dC) {
    int64_t n = B * N, *first = calloc(V + 1, sizeof(int64_t)), *order = malloc(sizeof(int64_t) * n);
    if (!first || !order) { free(first); free(order); return -1; }
    for (int64_t s = 0; s < n; s++) first[x[s] + 1]++;
    for (int64_t w = 0; w < V; w++) first[w + 1] += first[w];  /* first[w]: where word w's slots start */
    for (int64_t s = 0; s < n; s++) order[first[x[s]]++] = s;  /* first[w] now where word w + 1's start */
    int failed = 0;
#pragma omp parallel
    {
        int64_t t = omp_get_thread_num(), T = omp_get_num_threads();
        int64_t start = n * t / T, end = n * (t + 1) / T;
        while (start > 0 && start < n && x[order[start]] == x[order[start - 1]]) start++;
        while (end > 0 && end < n && x[order[end]] == x[order[end - 1]]) end++;
        float *ds = scratch(2 * (int64_t)K, &failed);  /* ds^k_i and p^k_i of one slot */
        for (int64_t s = start; ds && s < end; s++) {
            float *p = ds + K;
            int64_t b = order[s] / N, i = order[s] % N, w = x[order[s]];
            for (int64_t k = 0; k < K; k++) { ds[k] = DS[(b * K + k) * N + i]; p[k] = P[(b * K + k) * N + i]; }
            matvec_t(U + b * (K + 1) * d, ds, K, d, dA + w * d);  /* dm_i = sum_k ds^k_i u^k */
            matvec_t(DO + b * K * d, p, K, d, dC + w * d);  /* dc_i = sum_k p^k_i dv^k */
        }
        free(ds);
    }
    free(first);
    free(order);
    return failed ? -1 : 0;
}
