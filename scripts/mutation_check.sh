#!/usr/bin/env bash
# mutation_check.sh — proves the kernel tests can fail: on a copy of the tree, break one
# kernel at a time (mostly backward ones) and require the test suite to FAIL for each. Exit 1
# if any mutation survives. Usage: scripts/mutation_check.sh [build-dir-to-reuse]
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
cd "$top"
git ls-files -z | tar --null -cf - -T - | tar -xf - -C "$tmp"
[ -d "${1:-build}" ] && cp -a "${1:-build}" "$tmp/build"

# file | sed expression | test filters (one or more, space-separated: the suite must fail) |
# a CPU flag the mutated code needs (optional: without it in /proc/cpuinfo the entry is skipped,
# the code being compiled out under -march=native). Each sed must change the file.
# SiLU's gradient: the scalar formula is what the kernels run without AVX-512 (grad_activations
# fails), and the 16-lane one's reference with it (the bitwise comparisons fail); the 16-lane
# formula is what they run with it.
mutations=(
  "src/kernels/vmath.h|s/return dz \* s \* (1.0f + x \* one_minus_s)/return dz * s * (1.0f + x * 0.9f * one_minus_s)/|grad_activations vmath_expf_1p_leaves"
  "src/kernels/vmath.h|s/_mm512_add_ps(one, _mm512_mul_ps(x, oms))/_mm512_add_ps(one, _mm512_mul_ps(x, _mm512_mul_ps(oms, _mm512_set1_ps(0.9f))))/|grad_activations|avx512f"
  "src/kernels/elementwise.c|s/GRAD_TO_DX(dout\[i\] \* y\[i\] \* (1.0f - y\[i\]))/GRAD_TO_DX(dout[i] * y[i])/|grad_activations"
  "src/kernels/elementwise.c|s/else PAR_FOR dx\[i\] = (g)/else PAR_FOR dx[i] += (g)/|vmath_activation_kernels"
  "src/kernels/linear.c|s/const float bx = add \& UG_ADD_DX ? 1.0f : 0.0f/const float bx = 1.0f/|nn_linear_backward_pair"
  "src/kernels/linear.c|s/bw = add \& UG_ADD_DW ? 1.0f : 0.0f/bw = 1.0f/|nn_linear_backward_pair params_zero_grad_lazy"
  "src/kernels/linear.c|s/dbias\[o\] = N > 0 ? dout\[o\] : 0.0f/dbias[o] += N > 0 ? dout[o] : 0.0f/|nn_linear_backward_pair params_zero_grad_lazy"
  "src/kernels/linear.c|s/if (dw) ug_k_gemm(1, 0, O, Din, N, dout, inp, bw, dw)/if (dw) ug_k_gemm(1, 0, O, Din, N, dout, inp, 0.0f, dw)/|grad_linear_shared"
  "src/core/params.c|s/        if (t->grad_unset) {/        if (0 \&\& t->grad_unset) {/|params_zero_grad_lazy"
  "src/kernels/linear.c|s/for (int64_t o = lo; o < hi; o++) dbias\[o\] += row\[o\]/for (int64_t o = lo; o < hi; o++) dbias[o] += 0.5f * row[o]/|grad_linear_shared"
  "src/kernels/norm.c|s/dx\[i\] += rs \* (dy\[i\] \* wc - a - xhat \* c)/dx[i] += rs * (dy[i] * wc - a)/|group_norm"
  "src/kernels/norm.c|s/if (dw) dw\[c\] += (float)sw/if (dw) dw[c] += (float)(1.01 * sw)/|group_norm"
  "src/kernels/conv.c|s/ug_k_gemm(0, 1, O, K, L, dn, pw ? xn : col, beta, dwacc)/ug_k_gemm(0, 1, O, K, L, dn, pw ? xn : col, 0.0f, dwacc)/|conv"
  "src/kernels/conv.c|s/w\[(c \* C + o) \* 9 + (8 - t)\]/w[(c * C + o) * 9 + t]/|conv"
  "src/kernels/linear.c|s/acc\[cols\[c\]\] += s\[c\]/acc[cols[c]] += 0.5f * s[c]/|prefix"
  "src/kernels/linear.c|s/for (int64_t c = 0; c < l; c++) g\[c\] += s\[c\]/for (int64_t c = 1; c < l; c++) g[c] += s[c]/|prefix"
  "src/kernels/linear.c|s/for (int64_t c = l; c < k; c++) dst\[c\] = 0.0f/for (int64_t c = l; c < k; c++) dst[c] = 0.5f/|prefix"
  "src/kernels/shape.c|s/dx\[o \* n + idx\[j\]\] += dout/dx[o * n + idx[j]] = dout/|gather"
  "src/models/model.c|s/first_stream + (uint64_t)b0, \&lt)/first_stream, \&lt)/|model_loss_backward_split"
  "src/models/model.c|s/for (int t = 1; t < nt; t++) s += rg\[t - 1\]\[j\]/(void)rg/|model_loss_backward_split"
  "src/kernels/conv.c|s/            if (add_add)$/            if (0 \&\& add_add)/|nn_grad_conv2d_add nn_conv2d_add_equals_adds"
  "src/kernels/conv.c|s/dibias\[r\] += (float)ug_sum_f64(src, L)/dibias[r] += 0.5f * (float)ug_sum_f64(src, L)/|nn_grad_conv2d_add nn_conv2d_add_equals_adds"
  "src/kernels/winograd.c|s/(__mmask16)(me >> 1),/(__mmask16)(me >> 2),/|conv_winograd_matches_naive|avx512f"
  "src/kernels/linear.c|s/if (b) t += bj;/if (b) t += bj + bj;/|nn_fm_linear"
)
for m in "${mutations[@]}"; do
  IFS='|' read -r file expr filter need <<<"$m"
  if [ -n "$need" ] && ! grep -qw "$need" /proc/cpuinfo; then
    echo "mutation_check: skipped: $file ($filter): this CPU has no $need"
    continue
  fi
  cp "$top/$file" "$tmp/$file"
  sed -i "$expr" "$tmp/$file"
  if cmp -s "$top/$file" "$tmp/$file"; then
    echo "mutation_check: the mutation of $file did not apply (stale expression)" >&2
    exit 1
  fi
  # A mutation may leave a variable unused: build without -Werror, and without the flags of a
  # calling make (MAKEFLAGS would carry WERROR=1 from `make WERROR=1 mutation-check`).
  if ! MAKEFLAGS= MFLAGS= make -s -C "$tmp" WERROR=0 build/test_unigen >"$tmp/build.log" 2>&1; then
    echo "mutation_check: the tree mutated in $file does not build:" >&2
    tail -5 "$tmp/build.log" >&2
    exit 1
  fi
  # shellcheck disable=SC2086 # the filters are words
  if (cd "$tmp/tests" && ../build/test_unigen $filter >/dev/null 2>&1); then
    echo "mutation_check: SURVIVED: $file: $expr (tests '$filter' still pass)" >&2
    exit 1
  fi
  echo "mutation_check: caught: $file ($filter fails)"
  cp "$top/$file" "$tmp/$file"
done
echo "mutation_check: all ${#mutations[@]} mutations caught (or skipped as above)"
