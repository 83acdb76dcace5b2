/* flow.c — the flow family (placeholder until its implementation lands: every model is refused
 * with a message, nothing pretends to work). */
#include "models/family.h"

static ug_status flow_declare(const ug_model_cfg *cfg, ug_params *ps, void **impl) {
    (void)ps;
    *impl = NULL;
    return ug_fail(UG_ERR_UNSUPPORTED, "model: family flow (model '%s') is not built yet", cfg->net);
}

const ug_lfamily ug_flow_family = {.name = "flow", .models = "nice, nice-mnist, realnvp, glow", .declare = flow_declare};
