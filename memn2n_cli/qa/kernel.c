/* The bAbI model (MemN2N, Sections 2 and 4.1) on the CPU: the summed loss, the logits and every
   parameter's gradient of R restarts x B examples in one call, a restart per thread.

   memn2n_cli/qa/kernel.py compiles this file once per machine and calls it through ctypes; the
   plain PyTorch model (model.MemN2N under torch.func.vmap) computes the same, and
   tests/test_qa_kernel.py says so for every variant.

   For one example with n filled memory slots (slot 0 the most recent sentence):
       m^e_i   = sum_j l_ij * X^e[x_ij] + T^e[t_i]          embedding e of slot i (Sec. 4.1)
                 with l_ijk = a_ij + g_k b_ij (position encoding; bag of words: a = 1, b = 0)
       u^1     = sum_j l_qj * Q[x_qj]                       the question, Q = X^0 (adjacent) or B
       s^k_i   = u^k . m^{in(k)}_i
       p^k     = softmax(s^k) over the filled slots and the z empty ones, which are zero vectors
                 in the authors' code (score 0: e^0 in the denominator, nothing read; z = 0 when
                 empty memories are masked); p^k = s^k in the linear-start phase (Sec. 4.2)
       o^k     = sum_i p^k_i m^{out(k)}_i                   (1), (2)
       u^{k+1} = [ReLU] (u^k + o^k)  adjacent: in(k) = k-1, out(k) = k, W = rows of X^K
               = [ReLU] (H u^k + o^k) layer-wise: in = 0 (A), out = 1 (C), W its own
       logits  = W u^{K+1};  loss = sum over examples of -log softmax(logits)[answer]   (3)
   and the backward pass of the same, hop K to 1, as in lm/kernel.c. An answer of -1 (never seen
   in training) adds nothing. Gradients are added into the caller's zeroed buffers; the nil word
   (id 0) is skipped: its embedding is zero and stays so.

   Stories of a batch share most of their sentences, so each distinct sentence of a restart's
   batch is embedded once (sum_j l_ij X^e[x_ij], every e), its gradient gathered from every slot
   that holds it, and added into the word embeddings once, after the last example.

   dims: R B M J d V E K A T memory_size adjacent relu zero_empty S (15 int64). Row-major float32:
   X (R, E, V, d); T (R, E, T, d) or NULL when T = 0; Q (R, V, d) and H (R, d, d) and W (R, A, d)
   layer-wise only; pos_a, pos_b (S, J) and pos_g (d) the position-encoding coefficients of every
   sentence-table row; int64: sentences (S, J), story and time (R, B, M), size, query, answer (R, B),
   answer_ids (A). linear (R) int32. Out: loss (R) float64, logits (R, B, A); with dX != NULL the
   gradients dX, dT, dQ, dH, dW in the layouts of their parameters. Returns 0, or -1 when memory ran out.
   Nothing here checks an index: qa_kernel.KernelStep checks word ids, sentence rows, answers,
   answer ids and time indices (>= 0; those past T - 1 use row T - 1) before the call.

   Built without OpenMP (a compiler that has none), the restarts run one after another: the
   `omp parallel` pragmas are ignored, the `omp simd` loops vectorised as in the threaded build. */

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static float dot(const float *x, const float *y, int64_t d) {
    float s = 0.0f;
#pragma omp simd reduction(+:s)
    for (int64_t k = 0; k < d; k++) s += x[k] * y[k];
    return s;
}

static void axpy(float a, const float *x, float *y, int64_t d) {  /* y += a x */
#pragma omp simd
    for (int64_t k = 0; k < d; k++) y[k] += a * x[k];
}

/* y += sum_j l_j * rows[w_j], l_jk = a_j + g_k b_j, over the words w_j != 0 of one sentence. */
static void embed(const float *rows, const int64_t *words, const float *a, const float *b, const float *g,
                  int64_t J, int64_t d, float *y) {
    for (int64_t j = 0; j < J; j++) {
        if (words[j] == 0) continue;
        const float *x = rows + words[j] * d;
        const float aj = a[j], bj = b[j];
#pragma omp simd
        for (int64_t k = 0; k < d; k++) y[k] += (aj + g[k] * bj) * x[k];
    }
}

/* The transpose of embed: rows[w_j] += l_j * dy. */
static void embed_grad(float *rows, const int64_t *words, const float *a, const float *b, const float *g,
                       int64_t J, int64_t d, const float *dy) {
    for (int64_t j = 0; j < J; j++) {
        if (words[j] == 0) continue;
        float *x = rows + words[j] * d;
        const float aj = a[j], bj = b[j];
#pragma omp simd
        for (int64_t k = 0; k < d; k++) x[k] += (aj + g[k] * bj) * dy[k];
    }
}

int qa_step(const int64_t *dims, const int32_t *linear, const int64_t *sentences, const float *pos_a,
              const float *pos_b, const float *pos_g, const int64_t *story, const int64_t *time,
              const int64_t *size, const int64_t *query, const int64_t *answer, const int64_t *answer_ids,
              const float *X, const float *T, const float *Q, const float *H, const float *W,
              double *loss, float *logits, float *dX, float *dT, float *dQ, float *dH, float *dW) {
    const int64_t R = dims[0], B = dims[1], M = dims[2], J = dims[3], d = dims[4], V = dims[5], E = dims[6],
                  K = dims[7], A = dims[8], TT = dims[9], memory_size = dims[10];
    const int adjacent = (int)dims[11], relu = (int)dims[12], zero_empty = (int)dims[13];
    const int64_t S = dims[14];
    const int backward = dX != NULL;
    int failed = 0;

#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t r = 0; r < R; r++) {
        /* scratch: memories and their gradients (E, M, d); u^1..u^{K+1} and the pre-ReLU states
           (K+1, d); attention (K, M); logits (A); g, dv (d); dp, ds (M); the batch's distinct
           sentences embedded, and their gradients (at most S or B M of them, E, d) */
        const int64_t most = S < B * M ? S : B * M;
        const int64_t scratch = 2 * E * M * d + 2 * (K + 1) * d + K * M + A + 2 * d + 2 * M + 2 * most * E * d;
        float *buffer = calloc((size_t)scratch, sizeof(float));
        int64_t *seen = calloc((size_t)S, sizeof(int64_t));  /* row -> 1 + its place among the distinct, or 0 */
        int64_t *distinct = malloc((size_t)(most + 1) * sizeof(int64_t));  /* the distinct rows, in order */
        if (buffer == NULL || seen == NULL || distinct == NULL) {
            free(buffer), free(seen), free(distinct);
#pragma omp atomic write
            failed = 1;
            continue;
        }
        float *mem = buffer, *dmem = mem + E * M * d, *U = dmem + E * M * d, *pre = U + (K + 1) * d;
        float *P = pre + (K + 1) * d, *lg = P + K * M, *g = lg + A, *dv = g + d, *dp = dv + d, *ds = dp + M;
        float *sentence = ds + M, *dsentence = sentence + most * E * d;  /* (distinct, E, d) each */

        const float *Xr = X + r * E * V * d, *Tr = TT ? T + r * E * TT * d : NULL;
        const float *Qr = adjacent ? Xr : Q + r * V * d, *Hr = adjacent ? NULL : H + r * d * d;
        float *dXr = backward ? dX + r * E * V * d : NULL, *dTr = backward && TT ? dT + r * E * TT * d : NULL;
        float *dQr = backward ? (adjacent ? dXr : dQ + r * V * d) : NULL;
        float *dHr = backward && !adjacent ? dH + r * d * d : NULL;
        const int lin = linear[r];
        double total = 0.0;

        /* every distinct sentence of the batch, embedded once with each X^e */
        int64_t count = 0;
        for (int64_t b = 0; b < B; b++) {
            const int64_t n = size[r * B + b] < M ? size[r * B + b] : M;
            for (int64_t i = 0; i < n; i++) {
                const int64_t row = story[(r * B + b) * M + i];
                if (seen[row]) continue;
                seen[row] = ++count;
                distinct[count - 1] = row;
                for (int64_t e = 0; e < E; e++)
                    embed(Xr + e * V * d, sentences + row * J, pos_a + row * J, pos_b + row * J, pos_g, J, d,
                          sentence + ((count - 1) * E + e) * d);
            }
        }

        for (int64_t b = 0; b < B; b++) {
            const int64_t rb = r * B + b;
            const int64_t n = size[rb] < M ? size[rb] : M;
            const int64_t zeros = zero_empty && memory_size > n ? memory_size - n : 0;
            const int64_t *rows = story + rb * M, *times = time + rb * M;

            /* the memories m^e_i of the filled slots: their sentence's embedding and T^e[t_i] */
            for (int64_t e = 0; e < E; e++) {
                for (int64_t i = 0; i < n; i++) {
                    float *m = mem + (e * M + i) * d;
                    memcpy(m, sentence + ((seen[rows[i]] - 1) * E + e) * d, (size_t)d * sizeof(float));
                    if (Tr) {
                        const int64_t t = times[i] < TT - 1 ? times[i] : TT - 1;
                        axpy(1.0f, Tr + (e * TT + t) * d, m, d);
                    }
                }
            }
            /* u^1, the question */
            const int64_t q = query[rb];
            memset(U, 0, (size_t)d * sizeof(float));
            embed(Qr, sentences + q * J, pos_a + q * J, pos_b + q * J, pos_g, J, d, U);

            /* K hops forward */
            for (int64_t k = 0; k < K; k++) {
                const float *mi = mem + (adjacent ? k : 0) * M * d, *mo = mem + (adjacent ? k + 1 : 1) * M * d;
                const float *u = U + k * d;
                float *p = P + k * M, *next = U + (k + 1) * d, *before = pre + (k + 1) * d;
                for (int64_t i = 0; i < n; i++) p[i] = dot(mi + i * d, u, d);
                if (!lin && (n > 0 || zeros > 0)) {
                    float top = zeros > 0 ? 0.0f : -INFINITY;
                    for (int64_t i = 0; i < n; i++) top = p[i] > top ? p[i] : top;
                    double z = (double)zeros * exp(-(double)top);
                    for (int64_t i = 0; i < n; i++) {
                        p[i] = expf(p[i] - top);
                        z += p[i];
                    }
                    const float inv = (float)(1.0 / z);
                    for (int64_t i = 0; i < n; i++) p[i] *= inv;
                }
                if (adjacent) {
                    memcpy(before, u, (size_t)d * sizeof(float));
                } else {
                    for (int64_t o = 0; o < d; o++) before[o] = dot(Hr + o * d, u, d);
                }
                for (int64_t i = 0; i < n; i++) axpy(p[i], mo + i * d, before, d);
                for (int64_t o = 0; o < d; o++) next[o] = relu && before[o] < 0.0f ? 0.0f : before[o];
            }

            /* logits and loss */
            const float *u = U + K * d;
            for (int64_t a = 0; a < A; a++) {
                const float *w = adjacent ? Xr + (K * V + answer_ids[a]) * d : W + (r * A + a) * d;
                lg[a] = dot(w, u, d);
            }
            memcpy(logits + rb * A, lg, (size_t)A * sizeof(float));
            const int64_t target = answer[rb];
            if (target < 0) continue;
            float top = lg[0];
            for (int64_t a = 1; a < A; a++) top = lg[a] > top ? lg[a] : top;
            double z = 0.0;
            for (int64_t a = 0; a < A; a++) z += exp((double)(lg[a] - top));
            total += log(z) + top - lg[target];
            if (!backward) continue;

            /* backward: dlogits = softmax - onehot; g = W^T dlogits; dW += dlogits u^T */
            memset(g, 0, (size_t)d * sizeof(float));
            for (int64_t a = 0; a < A; a++) {
                const float dl = (float)(exp((double)(lg[a] - top)) / z) - (a == target ? 1.0f : 0.0f);
                const int64_t offset = adjacent ? (K * V + answer_ids[a]) * d : (r * A + a) * d;
                axpy(dl, (adjacent ? Xr : W) + offset, g, d);
                axpy(dl, u, (adjacent ? dXr : dW) + offset, d);
            }
            for (int64_t k = K - 1; k >= 0; k--) {
                const float *mi = mem + (adjacent ? k : 0) * M * d, *mo = mem + (adjacent ? k + 1 : 1) * M * d;
                float *dmi = dmem + (adjacent ? k : 0) * M * d, *dmo = dmem + (adjacent ? k + 1 : 1) * M * d;
                const float *uk = U + k * d, *p = P + k * M, *before = pre + (k + 1) * d;
                for (int64_t o = 0; o < d; o++) dv[o] = relu && before[o] < 0.0f ? 0.0f : g[o];
                float weighted = 0.0f;  /* sum_i p_i dp_i */
                for (int64_t i = 0; i < n; i++) {
                    dp[i] = dot(mo + i * d, dv, d);
                    weighted += p[i] * dp[i];
                    axpy(p[i], dv, dmo + i * d, d);
                }
                for (int64_t i = 0; i < n; i++) ds[i] = lin ? dp[i] : p[i] * (dp[i] - weighted);
                /* g = dLoss/du^k = sum_i ds_i m_i + (dv, or H^T dv); dH += dv u^T */
                if (adjacent) {
                    memcpy(g, dv, (size_t)d * sizeof(float));
                } else {
                    memset(g, 0, (size_t)d * sizeof(float));
                    for (int64_t o = 0; o < d; o++) {
                        axpy(dv[o], Hr + o * d, g, d);
                        axpy(dv[o], uk, dHr + o * d, d);
                    }
                }
                for (int64_t i = 0; i < n; i++) {
                    axpy(ds[i], mi + i * d, g, d);
                    axpy(ds[i], uk, dmi + i * d, d);
                }
            }
            embed_grad(dQr, sentences + q * J, pos_a + q * J, pos_b + q * J, pos_g, J, d, g);
            for (int64_t e = 0; e < E; e++) {
                for (int64_t i = 0; i < n; i++) {
                    float *dm = dmem + (e * M + i) * d;
                    if (dTr) {
                        const int64_t t = times[i] < TT - 1 ? times[i] : TT - 1;
                        axpy(1.0f, dm, dTr + (e * TT + t) * d, d);
                    }
                    axpy(1.0f, dm, dsentence + ((seen[rows[i]] - 1) * E + e) * d, d);
                    memset(dm, 0, (size_t)d * sizeof(float));
                }
            }
        }
        /* each distinct sentence's gradient into the embeddings of its words */
        for (int64_t c = 0; backward && c < count; c++) {
            const int64_t row = distinct[c];
            for (int64_t e = 0; e < E; e++)
                embed_grad(dXr + e * V * d, sentences + row * J, pos_a + row * J, pos_b + row * J, pos_g, J, d,
                           dsentence + (c * E + e) * d);
        }
        loss[r] = total;
        free(buffer), free(seen), free(distinct);
    }
    return failed ? -1 : 0;
}
