#include "ir/op_schema.h"
#include "ir/ops/families.h"

namespace kiln {

void RegisterConvPoolSchemas(OpRegistry& r) { (void)r; }

}  // namespace kiln
