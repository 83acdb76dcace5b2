/* vae.c — the vae family (placeholder until its implementation lands: every model is refused
 * with a message, nothing pretends to work). */
#include "models/family.h"

static ug_status vae_declare(const ug_model_cfg *cfg, ug_params *ps, void **impl) {
    (void)ps;
    *impl = NULL;
    return ug_fail(UG_ERR_UNSUPPORTED, "model: family vae (model '%s') is not built yet", cfg->net);
}

const ug_lfamily ug_vae_family = {.name = "vae", .models = "vae", .declare = vae_declare};
