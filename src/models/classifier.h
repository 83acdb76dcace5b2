/* classifier.h — the classifier family: p_phi(y | x) for evaluation features (Fréchet distance,
 * precision/recall in a learned feature space, SPEC section 10) and, trained on noisy inputs,
 * p_phi(y | x~, sigma) for classifier guidance (SPEC section 5; Dhariwal & Nichol 2021):
 *   D_w(x~; sigma) = D(x~; sigma) + w sigma^2 grad_x~ log p_phi(y | x~, sigma).
 *
 * Networks. Vectors: an MLP d -> hidden (x depth, SiLU) -> K; the feature is the last hidden
 * layer. Images (C, H, W), H and W divisible by 4: conv3x3(C, 32) SiLU, conv3x3/2(32, 64) SiLU,
 * conv3x3/2(64, 64) SiLU, global average, linear 64 -> 128 SiLU (the 128-d feature), 128 -> K.
 * Noise conditioning (noisy = 1): x~ = x + sigma eps with sigma from EDM's training law
 * (ln sigma ~ N(-1.2, 1.2^2)); the network sees c_in x~ with EDM's c_in = 1/sqrt(sigma^2 + 0.5^2)
 * and c_noise = ln(sigma)/4, which enters through a sinusoidal embedding
 * and a linear layer added to the first hidden layer (per channel for the CNN, as DDPM adds its
 * time embedding), before that layer's SiLU. Loss: cross-entropy. */
#ifndef UG_MODELS_CLASSIFIER_H
#define UG_MODELS_CLASSIFIER_H
#include "diffusion/formulation.h"

#define UG_CLS_MAX_LAYERS 16
#define UG_CLS_EMB_DIM 32

typedef struct ug_classifier {
    int data_dim, num_classes;
    int image;                 /* 1: the CNN on (channels, height, width) */
    int channels, height, width;
    int hidden, depth;         /* MLP */
    int noisy;
    int feat_dim;              /* MLP: hidden; CNN: 128 */
    int tile;                  /* rows per network call in evaluation (fixed: batch invariance) */
    ug_form form;              /* EDM: the training law of sigma and its sigma_min */
    /* MLP: layers 0..depth, the last one the logits. CNN: conv1..3, fc, head. */
    int nlayers;
    ug_tensor *w[UG_CLS_MAX_LAYERS], *b[UG_CLS_MAX_LAYERS];
    ug_tensor *emb_w, *emb_b;  /* noise embedding projection (noisy only) */
    ug_ctx *ctx;               /* evaluation activations, created on first use */
} ug_classifier;

/* Declares the parameters in ps (finalize afterwards). cfg: data_dim, num_classes >= 2,
 * channels/height/width (all 0 for vectors), hidden, depth, noisy. */
ug_status ug_classifier_declare(ug_classifier *c, ug_params *ps, const ug_model_cfg *cfg);
void ug_classifier_free(ug_classifier *c);

/* Logits (B, K) of x (B, d), which may require grad; sigma (B) the noise level of each row
 * (noisy classifiers; others ignore it and take NULL). *features, if not NULL, receives the
 * feature tensor (B, F). */
ug_tensor *ug_classifier_forward(ug_ctx *ctx, const ug_classifier *c, ug_tensor *x,
                                 const double *sigma, ug_tensor **features);

/* Mean cross-entropy on a batch. A noisy classifier perturbs example b with sigma and eps
 * drawn from Philox stream first_stream + b (uniform, normal for sigma, then d normals). */
ug_tensor *ug_classifier_loss(ug_ctx *ctx, const ug_classifier *c, const float *x, int64_t B,
                              const int32_t *labels, uint64_t seed, uint64_t first_stream);

/* Internal accessor of the public model handle (models/model.c): NULL unless a classifier. */
ug_classifier *ug_model_classifier(ug_model *m);

#endif
