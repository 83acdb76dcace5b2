/* ar.c — the ar family (placeholder until its implementation lands: every model is refused
 * with a message, nothing pretends to work). */
#include "models/family.h"

static ug_status ar_declare(const ug_model_cfg *cfg, ug_params *ps, void **impl) {
    (void)ps;
    *impl = NULL;
    return ug_fail(UG_ERR_UNSUPPORTED, "model: family ar (model '%s') is not built yet", cfg->net);
}

const ug_lfamily ug_ar_family = {.name = "ar", .models = "fvsbn, nade, made", .declare = ar_declare};
